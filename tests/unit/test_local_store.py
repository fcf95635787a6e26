"""The embedded store's own promises: layout, hashing, validation, corruption, concurrency."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import multiprocessing
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml_platform.data.local import INITIAL_MESSAGE, LocalDataStore
from ml_platform.data.store import DataStore
from ml_platform.errors import (
    ConfigError,
    ConflictError,
    CorruptStoreError,
    DataStoreError,
    NotFoundError,
)

REPO = "churn-data"
FIXED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LocalDataStore:
    s = LocalDataStore(tmp_path / "store")
    s.create_repository(REPO)
    return s


def _commit(store: LocalDataStore, changes: dict[str, bytes | None], branch: str = "main") -> str:
    return store.commit(REPO, branch, changes, message="m", author="t").id


def _blob_file(store: LocalDataStore, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return store.root / REPO / "objects" / "blobs" / digest[:2] / digest[2:]


def _commit_file(store: LocalDataStore, cid: str) -> Path:
    return store.root / REPO / "objects" / "commits" / cid[:2] / cid[2:]


def _flip_byte(path: Path, offset: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------- basics, layout
def test_is_a_datastore_and_touches_no_disk_until_used(tmp_path: Path) -> None:
    s = LocalDataStore(tmp_path / "lazy")
    assert isinstance(s, DataStore)
    assert s.kind == "local"
    assert not (tmp_path / "lazy").exists()


def test_initial_commit(store: LocalDataStore) -> None:
    [initial] = store.log(REPO, "main")
    assert initial.message == INITIAL_MESSAGE
    assert initial.parents == ()


def test_on_disk_layout_and_no_leftover_temp_files(store: LocalDataStore) -> None:
    cid = _commit(store, {"data/a.csv": b"hello"})
    repo_dir = store.root / REPO
    assert json.loads((repo_dir / "refs.json").read_text()) == {
        "format": 1, "branches": {"main": cid}}
    assert (repo_dir / "lock").is_file()
    assert _blob_file(store, b"hello").read_bytes() == b"hello"
    doc = json.loads(_commit_file(store, cid).read_bytes())
    assert doc["tree"] == {
        "data/a.csv": {"blob": hashlib.sha256(b"hello").hexdigest(), "size": 5}}
    assert not [p for p in store.root.rglob(".tmp-*")]


def test_commit_id_is_the_hash_of_its_canonical_json(store: LocalDataStore) -> None:
    cid = _commit(store, {"a": b"1"})
    assert hashlib.sha256(_commit_file(store, cid).read_bytes()).hexdigest() == cid


def test_same_content_same_id_across_stores(tmp_path: Path) -> None:
    ids = []
    for name in ("one", "two"):
        s = LocalDataStore(tmp_path / name, clock=lambda: FIXED)
        s.create_repository(REPO)
        ids.append(s.commit(REPO, "main", {"a": b"1"}, message="m", author="t",
                            metadata={"k": "v"}).id)
    assert ids[0] == ids[1]


def test_created_at_round_trips(tmp_path: Path) -> None:
    s = LocalDataStore(tmp_path / "s", clock=lambda: FIXED)
    s.create_repository(REPO)
    c = s.commit(REPO, "main", {"a": b"1"}, message="m", author="t")
    assert s.get_commit(REPO, c.id).created_at == FIXED == c.created_at


def test_existing_repository_directory_conflicts(tmp_path: Path) -> None:
    s = LocalDataStore(tmp_path / "s")
    (tmp_path / "s" / REPO).mkdir(parents=True)
    with pytest.raises(ConflictError, match="already exists"):
        s.create_repository(REPO)


def test_get_commit_accepts_branch_and_prefix(store: LocalDataStore) -> None:
    cid = _commit(store, {"a": b"1"})
    assert store.get_commit(REPO, "main").id == cid
    assert store.get_commit(REPO, cid[:8]).id == cid


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name", ["ab", "Upper", "-lead", "under_score", "a" * 64, "a.b", ""])
def test_invalid_repository_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid repository name"):
        LocalDataStore(tmp_path).create_repository(name)


@pytest.mark.parametrize(
    "name", ["", "-x", "a..b", "a b", "/x", ".hidden", "x~1", "feature/x", "v1.2", "caf\u00e9"])
def test_invalid_branch_names(store: LocalDataStore, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid branch name"):
        store.create_branch(REPO, name, "main")


@pytest.mark.parametrize("name", ["feature-new-data", "release-1_2", "_tmp", "v2", "UPPER"])
def test_valid_branch_names(store: LocalDataStore, name: str) -> None:
    store.create_branch(REPO, name, "main")
    assert name in store.list_branches(REPO)


@pytest.mark.parametrize("path", ["", "/abs", "dir/", "a//b", "a/../b", "./a"])
def test_invalid_paths(store: LocalDataStore, path: str) -> None:
    with pytest.raises(ConfigError, match="invalid file path"):
        _commit(store, {path: b"1"})


def test_non_bytes_content_is_refused(store: LocalDataStore) -> None:
    with pytest.raises(ConfigError, match="must be bytes"):
        store.commit(REPO, "main", {"a": "text"}, message="m", author="t")  # type: ignore[dict-item]


@pytest.mark.parametrize("metadata", [{"rows": 5}, {1: "x"}, {"k": None}])
def test_metadata_must_be_str_to_str(store: LocalDataStore, metadata: dict) -> None:
    with pytest.raises(ConfigError, match="strings to strings"):
        store.commit(REPO, "main", {"a": b"1"}, message="m", author="t", metadata=metadata)
    assert store.list_files(REPO, "main") == {}  # nothing half-written


def test_negative_log_limit_is_refused(store: LocalDataStore) -> None:
    assert store.log(REPO, "main", limit=0) == []
    with pytest.raises(ConfigError, match="non-negative"):
        store.log(REPO, "main", limit=-1)


# ------------------------------------------------------------------------ commit semantics
def test_rewriting_identical_content_is_nothing_to_commit(store: LocalDataStore) -> None:
    _commit(store, {"a": b"1"})
    with pytest.raises(ConflictError, match="nothing to commit"):
        _commit(store, {"a": b"1"})


def test_deleting_a_missing_path_is_nothing_to_commit(store: LocalDataStore) -> None:
    with pytest.raises(ConflictError, match="nothing to commit"):
        _commit(store, {"never-there": None})


def test_bytearray_content_is_accepted(store: LocalDataStore) -> None:
    _commit(store, {"a": bytearray(b"xy")})  # type: ignore[dict-item]
    assert store.read(REPO, "main", "a") == b"xy"


def test_open_returns_a_seekable_file_stream(store: LocalDataStore) -> None:
    _commit(store, {"a": b"0123456789"})
    with store.open(REPO, "main", "a") as f:
        assert isinstance(f, io.BufferedReader)
        assert f.read(3) == b"012"
        f.seek(8)
        assert f.read() == b"89"


# ---------------------------------------------------------------------------- resolve_ref
def test_short_prefix_is_not_found_with_a_hint(store: LocalDataStore) -> None:
    cid = _commit(store, {"a": b"1"})
    with pytest.raises(NotFoundError, match="at least 6"):
        store.resolve_ref(REPO, cid[:5])


def test_ambiguous_prefix_is_reported(store: LocalDataStore) -> None:
    cid = _commit(store, {"a": b"1"})
    twin = _commit_file(store, cid).with_name(cid[2:8] + "f" * 56)
    shutil.copy(_commit_file(store, cid), twin)  # a second object sharing the prefix
    with pytest.raises(DataStoreError, match="ambiguous") as err:
        store.resolve_ref(REPO, cid[:8])
    assert not isinstance(err.value, NotFoundError)
    assert store.resolve_ref(REPO, cid) == cid


def test_branch_name_wins_over_a_commit_prefix(store: LocalDataStore) -> None:
    initial = store.branch_head(REPO, "main")
    cid = _commit(store, {"a": b"1"})
    store.create_branch(REPO, cid[:8], initial)  # a (silly) branch named like the prefix
    assert store.resolve_ref(REPO, cid[:8]) == initial


# ----------------------------------------------------------------------------------- merge
def test_merge_of_an_already_merged_source_conflicts(store: LocalDataStore) -> None:
    store.create_branch(REPO, "dev", "main")
    _commit(store, {"a": b"1"})
    with pytest.raises(ConflictError, match="nothing to merge"):
        store.merge(REPO, "dev", "main", message="m", author="t")


def test_source_wins_on_conflict(store: LocalDataStore) -> None:
    _commit(store, {"f": b"base"})
    store.create_branch(REPO, "dev", "main")
    _commit(store, {"f": b"dev"}, branch="dev")
    _commit(store, {"f": None})
    store.merge(REPO, "dev", "main", message="m", author="t")
    assert store.read(REPO, "main", "f") == b"dev"


def _backwards_clock() -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: FIXED - timedelta(minutes=next(ticks))


@pytest.mark.parametrize("clock", ["real", "backwards"])
def test_second_merge_uses_the_latest_merge_base(tmp_path: Path, clock: str) -> None:
    # The base is found from the graph, not from timestamps, which may go backwards.
    store = LocalDataStore(tmp_path / "s", **({"clock": _backwards_clock()}
                                              if clock == "backwards" else {}))
    store.create_repository(REPO)
    _commit(store, {"x": b"0", "y": b"0"})
    store.create_branch(REPO, "dev", "main")
    _commit(store, {"x": b"dev1"}, branch="dev")
    store.merge(REPO, "dev", "main", message="m1", author="t")
    _commit(store, {"x": b"main2"})          # main changes x after the merge
    _commit(store, {"y": b"dev2"}, branch="dev")  # dev only touches y
    store.merge(REPO, "dev", "main", message="m2", author="t")
    # With the old base (before dev1), dev's x would wrongly overwrite main's newer x.
    assert store.read(REPO, "main", "x") == b"main2"
    assert store.read(REPO, "main", "y") == b"dev2"


def test_fast_path_takes_the_source_tree(store: LocalDataStore) -> None:
    _commit(store, {"a": b"1"})
    store.create_branch(REPO, "dev", "main")
    _commit(store, {"a": None, "b": b"2"}, branch="dev")
    merged = store.merge(REPO, "dev", "main", message="m", author="t")
    assert store.list_files(REPO, merged.id) == store.list_files(REPO, "dev")


# ------------------------------------------------------------------------------ corruption
def test_flipped_byte_in_a_blob_is_detected(store: LocalDataStore) -> None:
    _commit(store, {"a": b"precious data"})
    blob = _blob_file(store, b"precious data")
    _flip_byte(blob, 3)
    for read in (lambda: store.read(REPO, "main", "a"), lambda: store.open(REPO, "main", "a")):
        with pytest.raises(CorruptStoreError, match="does not match its hash") as err:
            read()
        assert str(blob) in str(err.value) and "backup" in str(err.value)
    with pytest.raises(CorruptStoreError):
        store.verify(REPO)


def test_missing_blob_is_detected(store: LocalDataStore) -> None:
    _commit(store, {"a": b"x"})
    _blob_file(store, b"x").unlink()
    with pytest.raises(CorruptStoreError, match="missing"):
        store.read(REPO, "main", "a")


def test_flipped_byte_in_a_commit_object_is_detected(store: LocalDataStore) -> None:
    first = _commit(store, {"a": b"1"})
    _commit(store, {"a": b"2"})
    path = _commit_file(store, first)
    _flip_byte(path, 10)
    with pytest.raises(CorruptStoreError, match="does not match its id") as err:
        store.log(REPO, "main")
    assert str(path) in str(err.value)
    with pytest.raises(CorruptStoreError):
        store.get_commit(REPO, first)
    assert store.read(REPO, "main", "a") == b"2"  # untouched commits still read


def test_missing_commit_behind_a_branch_is_corruption(store: LocalDataStore) -> None:
    head = _commit(store, {"a": b"1"})
    _commit_file(store, head).unlink()
    with pytest.raises(CorruptStoreError, match="missing"):
        store.read(REPO, "main", "a")


@pytest.mark.parametrize("content", [None, b"{not json", b'{"branches": {"main": "zz"}}', b"[]"])
def test_missing_or_garbled_refs_are_reported(store: LocalDataStore, content: bytes | None) -> None:
    refs = store.root / REPO / "refs.json"
    if content is None:
        refs.unlink()
    else:
        refs.write_bytes(content)
    with pytest.raises(CorruptStoreError) as err:
        store.branch_head(REPO, "main")
    assert str(refs) in str(err.value)


def test_verify_counts_commits_and_blobs(store: LocalDataStore) -> None:
    _commit(store, {"a": b"1", "b": b"2"})
    _commit(store, {"a": b"3"})
    assert store.verify(REPO) == 3 + 3  # three commits, three distinct blobs


# ----------------------------------------------------------------------------- concurrency
def _writer(root: str, name: str, count: int) -> None:
    store = LocalDataStore(root)
    for i in range(count):
        store.commit(REPO, "main", {f"{name}/{i}": f"{name}-{i}".encode()},
                     message=f"{name} {i}", author=name)


def test_two_processes_committing_lose_no_update(store: LocalDataStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(store.root), n, 20)) for n in ("w1", "w2")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    history = store.log(REPO, "main")
    assert len(history) == 41
    assert sorted(c.message for c in history[:-1]) == sorted(
        f"{n} {i}" for n in ("w1", "w2") for i in range(20))
    files = store.list_files(REPO, "main")
    assert len(files) == 40
    assert store.read(REPO, "main", "w2/19") == b"w2-19"
    assert store.verify(REPO) == 41 + 40


def test_stale_expected_head_loses_to_the_first_writer(store: LocalDataStore) -> None:
    head = store.branch_head(REPO, "main")
    store.commit(REPO, "main", {"a": b"1"}, message="m", author="t", expected_head=head)
    with pytest.raises(ConflictError, match="moved"):
        store.commit(REPO, "main", {"b": b"1"}, message="m", author="t", expected_head=head)
