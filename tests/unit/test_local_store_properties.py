"""Property tests: whatever sequence of commits is made, the store gives back exactly that."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.data.local import LocalDataStore
from ml_platform.data.store import Change
from ml_platform.errors import ConflictError

REPO = "prop-repo"
BRANCHES = ("main", "dev")
Files = dict[str, bytes]
Op = tuple[str, dict[str, bytes | None]]

# A small alphabet of segments makes paths collide, so overwrites and deletions really happen.
paths = st.lists(st.sampled_from(["a", "b", "data", "x.csv"]), min_size=1, max_size=3).map(
    "/".join)
change_sets = st.dictionaries(paths, st.none() | st.binary(max_size=40), max_size=4)
operations = st.lists(st.tuples(st.sampled_from(BRANCHES), change_sets), min_size=1, max_size=10)

# Each example makes its own store in a TemporaryDirectory, so sharing pytest's function-scoped
# fixtures (the autouse platform home) across examples is harmless.
FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _apply(files: Files, changes: Mapping[str, bytes | None]) -> Files:
    after = dict(files)
    for path, data in changes.items():
        if data is None:
            after.pop(path, None)
        else:
            after[path] = data
    return after


def _expected_diff(before: Files, after: Files) -> list[Change]:
    out = []
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            out.append(Change(path, "added", len(after[path])))
        elif path not in after:
            out.append(Change(path, "removed", len(before[path])))
        elif before[path] != after[path]:
            out.append(Change(path, "changed", len(after[path])))
    return out


class Model:
    """What the store should hold: files per commit and each branch's first-parent history."""

    def __init__(self, store: LocalDataStore) -> None:
        self.store = store
        initial = store.branch_head(REPO, "main")
        self.files: dict[str, Files] = {initial: {}}
        self.history = {"main": [initial]}

    def fork(self) -> None:
        """Create 'dev' at main's head."""
        self.store.create_branch(REPO, "dev", "main")
        self.history["dev"] = list(self.history["main"])

    def head(self, branch: str) -> str:
        return self.history[branch][-1]

    def commit(self, branch: str, changes: dict[str, bytes | None]) -> None:
        parent = self.head(branch)
        before = self.files[parent]
        after = _apply(before, changes)
        if after == before:
            with pytest.raises(ConflictError, match="nothing to commit"):
                self.store.commit(REPO, branch, changes, message="noop", author="prop")
            return
        commit = self.store.commit(REPO, branch, changes, message="c", author="prop")
        assert commit.parents == (parent,)
        assert self.store.diff(REPO, parent, commit.id) == _expected_diff(before, after)
        self.files[commit.id] = after
        self.history[branch].append(commit.id)


# Memory-backed when the machine has it: fsync on a busy shared disk costs milliseconds per
# call, and these tests are about the store's logic, not about durability.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextlib.contextmanager
def _fresh_model() -> Iterator[Model]:
    with tempfile.TemporaryDirectory(dir=SCRATCH, prefix="local-store-props-") as tmp:
        store = LocalDataStore(tmp)
        store.create_repository(REPO)
        yield Model(store)


@FAST
@given(ops=operations)
def test_every_commit_reads_back_exactly_what_was_written(ops: list[Op]) -> None:
    with _fresh_model() as model:
        model.fork()
        for branch, changes in ops:
            model.commit(branch, changes)

        store = model.store
        for cid, files in model.files.items():
            assert store.list_files(REPO, cid) == {p: len(d) for p, d in sorted(files.items())}
            assert {p: store.read(REPO, cid, p) for p in files} == files
        for branch in BRANCHES:
            assert [c.id for c in store.log(REPO, branch)] == model.history[branch][::-1]
        store.verify(REPO)


@FAST
@given(shared=change_sets, ops=operations)
def test_merge_applies_the_source_changes_over_the_destination(
    shared: dict[str, bytes | None], ops: list[Op]
) -> None:
    with _fresh_model() as model:
        model.commit("main", shared)
        model.fork()
        base = model.files[model.head("dev")]
        for branch, changes in ops:
            model.commit(branch, changes)
        main_head, dev_head = model.head("main"), model.head("dev")
        if dev_head in model.history["main"]:
            with pytest.raises(ConflictError, match="nothing to merge"):
                model.store.merge(REPO, "dev", "main", message="m", author="prop")
            return

        merged = model.store.merge(REPO, "dev", "main", message="m", author="prop")

        dev = model.files[dev_head]
        source_changes = {p: dev.get(p) for p in base.keys() | dev.keys()
                          if dev.get(p) != base.get(p)}
        expected = _apply(model.files[main_head], source_changes)
        assert merged.parents == (main_head, dev_head)
        assert model.store.list_files(REPO, "main") == {
            p: len(d) for p, d in sorted(expected.items())}
        assert {p: model.store.read(REPO, "main", p) for p in expected} == expected
