"""The DataStore contract: every backend must pass these, through the Protocol only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from ml_platform.data.store import Change, DataStore, iter_new_commits
from ml_platform.errors import ConfigError, ConflictError, NotFoundError


def _commit(store: DataStore, repo: str, changes: dict[str, bytes | None],
            branch: str = "main", message: str = "change") -> str:
    return store.commit(repo, branch, changes, message=message, author="contract").id


def test_store_satisfies_the_protocol(store: DataStore) -> None:
    assert isinstance(store, DataStore)
    assert store.kind in ("local", "lakefs")


def test_create_repository_starts_with_one_empty_commit(store: DataStore, repo_name: str) -> None:
    assert not store.repository_exists(repo_name)
    store.create_repository(repo_name, default_branch="main")

    assert store.repository_exists(repo_name)
    branches = store.list_branches(repo_name)
    assert list(branches) == ["main"]
    history = store.log(repo_name, "main")
    assert [c.id for c in history] == [branches["main"]]
    assert history[0].parents == ()
    assert store.list_files(repo_name, "main") == {}


def test_create_repository_twice_conflicts(store: DataStore, repo: str) -> None:
    with pytest.raises(ConflictError):
        store.create_repository(repo)


def test_create_repository_honours_default_branch(store: DataStore, repo_name: str) -> None:
    store.create_repository(repo_name, default_branch="production")
    assert list(store.list_branches(repo_name)) == ["production"]


def test_commit_then_read_back(store: DataStore, repo: str) -> None:
    before = store.branch_head(repo, "main")
    commit = store.commit(repo, "main", {"data/a.csv": b"x,y\n1,2\n", "b.bin": b"\x00\xff"},
                          message="first data", author="alice", metadata={"rows": "1"})

    assert store.branch_head(repo, "main") == commit.id
    assert commit.parents == (before,)
    assert (commit.message, commit.author, dict(commit.metadata)) == (
        "first data", "alice", {"rows": "1"})
    assert commit.repository == repo
    assert store.read(repo, "main", "data/a.csv") == b"x,y\n1,2\n"
    assert store.read(repo, commit.id, "b.bin") == b"\x00\xff"
    assert store.get_commit(repo, commit.id) == commit


def test_created_at_is_timezone_aware_utc_and_recent(store: DataStore, repo: str) -> None:
    created = store.commit(repo, "main", {"a": b"1"}, message="m", author="a").created_at
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_commit_is_pinned_after_the_branch_moves(store: DataStore, repo: str) -> None:
    first = _commit(store, repo, {"f": b"v1"})
    _commit(store, repo, {"f": b"v2", "g": b"new"})
    assert store.read(repo, first, "f") == b"v1"
    assert store.list_files(repo, first) == {"f": 2}
    assert store.read(repo, "main", "f") == b"v2"


def test_delete_removes_the_file(store: DataStore, repo: str) -> None:
    _commit(store, repo, {"keep": b"1", "drop": b"2"})
    _commit(store, repo, {"drop": None})
    assert store.list_files(repo, "main") == {"keep": 1}
    with pytest.raises(NotFoundError):
        store.read(repo, "main", "drop")


def test_empty_commit_is_refused(store: DataStore, repo: str) -> None:
    head = store.branch_head(repo, "main")
    with pytest.raises(ConflictError, match="nothing to commit"):
        store.commit(repo, "main", {}, message="empty", author="a")
    assert store.branch_head(repo, "main") == head


def test_expected_head_is_compare_and_swap(store: DataStore, repo: str) -> None:
    head = store.branch_head(repo, "main")
    moved = _commit(store, repo, {"a": b"1"})
    with pytest.raises(ConflictError):
        store.commit(repo, "main", {"b": b"2"}, message="stale", author="a", expected_head=head)
    assert store.branch_head(repo, "main") == moved
    ok = store.commit(repo, "main", {"b": b"2"}, message="fresh", author="a", expected_head=moved)
    assert ok.parents == (moved,)


def test_log_is_newest_first_by_first_parent_and_respects_limit(store: DataStore,
                                                                 repo: str) -> None:
    ids = [_commit(store, repo, {"f": str(i).encode()}, message=f"c{i}") for i in range(4)]
    history = store.log(repo, "main")
    assert [c.id for c in history[:4]] == ids[::-1]
    assert len(history) == 5  # plus the initial commit
    assert [c.id for c in store.log(repo, "main", limit=2)] == ids[:1:-1]
    assert [c.id for c in store.log(repo, ids[1])] == [ids[1], ids[0], history[-1].id]


def test_iter_new_commits_yields_oldest_first_after_since(store: DataStore, repo: str) -> None:
    ids = [_commit(store, repo, {"f": str(i).encode()}) for i in range(3)]
    assert [c.id for c in iter_new_commits(store, repo, "main", since=ids[0])] == ids[1:]


def test_list_files_filters_by_prefix(store: DataStore, repo: str) -> None:
    _commit(store, repo, {"raw/a.csv": b"aa", "raw/b.csv": b"bbb", "other/c": b"c"})
    assert store.list_files(repo, "main", prefix="raw/") == {"raw/a.csv": 2, "raw/b.csv": 3}
    assert store.list_files(repo, "main") == {"other/c": 1, "raw/a.csv": 2, "raw/b.csv": 3}


def test_open_streams_the_file(store: DataStore, repo: str) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    _commit(store, repo, {"big.bin": payload})
    with store.open(repo, "main", "big.bin") as stream:
        head = stream.read(10)
        rest = stream.read()
    assert head + rest == payload


def test_diff_lists_added_removed_changed_sorted_by_path(store: DataStore, repo: str) -> None:
    left = _commit(store, repo, {"b": b"old", "c": b"gone", "d": b"same"})
    right = _commit(store, repo, {"b": b"newer", "c": None, "a": b"x"})

    changes = store.diff(repo, left, right)
    assert [(c.path, c.type) for c in changes] == [
        ("a", "added"), ("b", "changed"), ("c", "removed")]
    assert changes[0] == Change("a", "added", 1)
    assert changes[1] == Change("b", "changed", 5)
    assert store.diff(repo, right, right) == []


def test_branch_create_list_and_independence(store: DataStore, repo: str) -> None:
    base = _commit(store, repo, {"f": b"main"})
    assert store.create_branch(repo, "feature-x", "main") == base
    assert store.list_branches(repo) == {"feature-x": base, "main": base}

    _commit(store, repo, {"f": b"feature"}, branch="feature-x")
    assert store.read(repo, "main", "f") == b"main"
    assert store.read(repo, "feature-x", "f") == b"feature"


def test_create_branch_from_a_commit_id(store: DataStore, repo: str) -> None:
    first = _commit(store, repo, {"f": b"1"})
    _commit(store, repo, {"f": b"2"})
    assert store.create_branch(repo, "old", first) == first
    assert store.read(repo, "old", "f") == b"1"


@pytest.mark.parametrize("name", ["feature/x", "v1.2", "-lead"])
def test_branch_names_follow_lakefs_rules_everywhere(store: DataStore, repo: str,
                                                     name: str) -> None:
    with pytest.raises(ConfigError):
        store.create_branch(repo, name, "main")


@pytest.mark.parametrize("name", ["Upper-case", "ab", "under_score"])
def test_repository_names_follow_lakefs_rules_everywhere(store: DataStore, name: str) -> None:
    with pytest.raises(ConfigError):
        store.create_repository(name)


def test_existing_branch_conflicts(store: DataStore, repo: str) -> None:
    with pytest.raises(ConflictError):
        store.create_branch(repo, "main", "main")


def test_resolve_ref_by_branch_full_id_and_prefix(store: DataStore, repo: str) -> None:
    cid = _commit(store, repo, {"f": b"1"})
    assert store.resolve_ref(repo, "main") == cid
    assert store.resolve_ref(repo, cid) == cid
    assert store.resolve_ref(repo, cid[:12]) == cid


def test_merge_applies_source_changes_and_records_both_parents(store: DataStore,
                                                               repo: str) -> None:
    _commit(store, repo, {"shared": b"base", "main-only": b"m"})
    store.create_branch(repo, "dev", "main")
    _commit(store, repo, {"dev-file": b"d", "shared": b"dev"}, branch="dev")
    _commit(store, repo, {"main-file": b"m2", "shared": b"main"})
    dest_head = store.branch_head(repo, "main")
    source_head = store.branch_head(repo, "dev")

    merged = store.merge(repo, "dev", "main", message="merge dev", author="bob",
                         metadata={"reason": "test"})

    assert merged.parents == (dest_head, source_head)
    assert store.branch_head(repo, "main") == merged.id
    assert dict(merged.metadata) == {"reason": "test"}
    files = {p: store.read(repo, "main", p) for p in store.list_files(repo, "main")}
    assert files == {"shared": b"dev", "main-only": b"m", "dev-file": b"d", "main-file": b"m2"}
    assert store.read(repo, "dev", "shared") == b"dev"  # the source branch is untouched


def test_merge_when_destination_has_not_moved(store: DataStore, repo: str) -> None:
    store.create_branch(repo, "dev", "main")
    _commit(store, repo, {"new": b"1"}, branch="dev")
    merged = store.merge(repo, "dev", "main", message="m", author="a")
    assert store.list_files(repo, "main") == {"new": 1}
    assert len(merged.parents) == 2


def test_merge_propagates_deletions(store: DataStore, repo: str) -> None:
    _commit(store, repo, {"a": b"1", "b": b"2"})
    store.create_branch(repo, "dev", "main")
    _commit(store, repo, {"a": None}, branch="dev")
    _commit(store, repo, {"c": b"3"})
    store.merge(repo, "dev", "main", message="m", author="a")
    assert store.list_files(repo, "main") == {"b": 1, "c": 1}


@pytest.mark.parametrize(
    "call",
    [
        lambda s, r: s.list_branches(r),
        lambda s, r: s.branch_head(r, "main"),
        lambda s, r: s.log(r, "main"),
        lambda s, r: s.read(r, "main", "f"),
        lambda s, r: s.commit(r, "main", {"f": b"1"}, message="m", author="a"),
    ],
    ids=["list_branches", "branch_head", "log", "read", "commit"],
)
def test_missing_repository_is_not_found(
    store: DataStore, repo_name: str, call: Callable[[DataStore, str], object]
) -> None:
    with pytest.raises(NotFoundError):
        call(store, repo_name)


def test_missing_branch_is_not_found(store: DataStore, repo: str) -> None:
    with pytest.raises(NotFoundError):
        store.branch_head(repo, "nope")
    with pytest.raises(NotFoundError):
        store.commit(repo, "nope", {"f": b"1"}, message="m", author="a")
    with pytest.raises(NotFoundError):
        store.create_branch(repo, "new", "nope")


def test_missing_path_is_not_found(store: DataStore, repo: str) -> None:
    _commit(store, repo, {"f": b"1"})
    with pytest.raises(NotFoundError):
        store.read(repo, "main", "g")
    with pytest.raises(NotFoundError):
        store.open(repo, "main", "g")


def test_missing_commit_is_not_found(store: DataStore, repo: str) -> None:
    unknown = "0" * 64
    with pytest.raises(NotFoundError):
        store.get_commit(repo, unknown)
    with pytest.raises(NotFoundError):
        store.resolve_ref(repo, unknown)
    with pytest.raises(NotFoundError):
        store.read(repo, unknown, "f")


def test_reset_branch_moves_the_head_back_and_iter_new_commits_reports_it(
    store: DataStore, repo: str
) -> None:
    a = store.commit(repo, "main", {"x.csv": b"1"}, message="a", author="t").id
    b = store.commit(repo, "main", {"x.csv": b"2"}, message="b", author="t").id
    assert store.reset_branch(repo, "main", a) == a
    assert store.branch_head(repo, "main") == a
    assert store.read(repo, "main", "x.csv") == b"1"
    assert store.get_commit(repo, b).id == b  # commits stay; only the branch moved
    with pytest.raises(LookupError, match="reset or force-push"):
        list(iter_new_commits(store, repo, "main", b))


def test_reset_missing_branch_or_commit_is_not_found(store: DataStore, repo: str) -> None:
    head = store.branch_head(repo, "main")
    with pytest.raises(NotFoundError):
        store.reset_branch(repo, "nope", head)
    with pytest.raises(NotFoundError):
        store.reset_branch(repo, "main", "f" * 64)
