"""The lakeFS backend over real HTTP, through the real lakefs_sdk, against the lakeFS-API-
compatible test server (tests/lakefs_server): error mapping, retries, streaming, configuration.

Behaviour shared with the embedded store is covered by tests/contract; this file covers what
only a remote backend has."""

from __future__ import annotations

import hashlib
import socket
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from ml_platform.data.lakefs_store import (
    AUTHOR_METADATA_KEY,
    ENV_ACCESS_KEY_ID,
    ENV_ENDPOINT,
    ENV_SECRET_ACCESS_KEY,
    ENV_STORAGE_NAMESPACE,
    LakeFSDataStore,
)
from ml_platform.errors import (
    AuthError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    NotFoundError,
)
from tests.lakefs_server.app import _Api

if TYPE_CHECKING:
    from tests.lakefs_server.fixtures import LakeFSEndpoint

pytest_plugins = ["tests.lakefs_server.fixtures"]

REPO = "demo-data"
COMMIT_ROUTE = "POST /api/v1/repositories/{repository}/branches/{branch}/commits"


class RecordingSleeper:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeper() -> RecordingSleeper:
    return RecordingSleeper()


def make_store(
    server: LakeFSEndpoint, sleeper: RecordingSleeper, timeout_s: float = 30
) -> LakeFSDataStore:
    return LakeFSDataStore(
        server.url,
        server.access_key_id,
        server.secret_access_key,
        timeout_s=timeout_s,
        retries=3,
        backoff_s=0.5,
        sleeper=sleeper,
    )


@pytest.fixture
def store(lakefs_server: LakeFSEndpoint, sleeper: RecordingSleeper) -> LakeFSDataStore:
    s = make_store(lakefs_server, sleeper)
    s.create_repository(REPO)
    return s


def assert_no_secret(text: str, server: LakeFSEndpoint) -> None:
    assert server.secret_access_key not in text


# -- credentials -------------------------------------------------------------------------------


def test_wrong_secret_raises_auth_error_without_leaking_it(
    lakefs_server: LakeFSEndpoint, sleeper: RecordingSleeper
) -> None:
    wrong = LakeFSDataStore(
        lakefs_server.url, lakefs_server.access_key_id, "not-the-secret", sleeper=sleeper
    )
    with pytest.raises(AuthError) as info:
        wrong.create_repository(REPO)
    text = str(info.value) + repr(info.value.__cause__)
    assert "not-the-secret" not in text
    assert ENV_SECRET_ACCESS_KEY in str(info.value)  # says what to check
    assert sleeper.calls == []  # a 401 is not retried


def test_repr_and_errors_never_show_the_secret(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore
) -> None:
    assert_no_secret(repr(store), lakefs_server)
    assert lakefs_server.url in repr(store)
    lakefs_server.faults.fail(100)
    with pytest.raises(BackendUnavailableError) as info:
        store.branch_head(REPO, "main")
    assert_no_secret(str(info.value), lakefs_server)


# -- not found / conflict ----------------------------------------------------------------------


def test_missing_repository_branch_commit_and_path_raise_not_found(store: LakeFSDataStore) -> None:
    with pytest.raises(NotFoundError, match="no-such-repo"):
        store.branch_head("no-such-repo", "main")
    with pytest.raises(NotFoundError, match="no-such-branch"):
        store.branch_head(REPO, "no-such-branch")
    with pytest.raises(NotFoundError, match="deadbeef"):
        store.get_commit(REPO, "deadbeef")
    with pytest.raises(NotFoundError, match="missing.csv"):
        store.read(REPO, "main", "missing.csv")
    assert store.repository_exists("no-such-repo") is False


def test_existing_repository_and_branch_raise_conflict(store: LakeFSDataStore) -> None:
    with pytest.raises(ConflictError):
        store.create_repository(REPO)
    store.create_branch(REPO, "dev", "main")
    with pytest.raises(ConflictError):
        store.create_branch(REPO, "dev", "main")


def test_moved_head_is_refused_before_anything_is_staged(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore
) -> None:
    old = store.branch_head(REPO, "main")
    store.commit(REPO, "main", {"a.csv": b"1"}, message="m", author="a")
    lakefs_server.requests.clear()
    with pytest.raises(ConflictError, match=old):
        store.commit(REPO, "main", {"b.csv": b"2"}, message="m", author="a", expected_head=old)
    assert all("objects" not in route for _, route in lakefs_server.requests)


# -- retries -----------------------------------------------------------------------------------


def test_two_503s_then_success_after_backoff(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore, sleeper: RecordingSleeper
) -> None:
    lakefs_server.faults.fail(2)
    assert store.branch_head(REPO, "main")
    assert sleeper.calls == [0.5, 1.0]


def test_503_forever_raises_backend_unavailable_with_endpoint(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore, sleeper: RecordingSleeper
) -> None:
    lakefs_server.faults.fail(100)
    with pytest.raises(BackendUnavailableError) as info:
        store.list_files(REPO, "main")
    assert sleeper.calls == [0.5, 1.0, 2.0]  # retries=3: four attempts
    message = str(info.value)
    assert lakefs_server.url in message and "503" in message and ENV_ENDPOINT in message


def test_503_on_commit_is_retried(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore, sleeper: RecordingSleeper
) -> None:
    lakefs_server.faults.fail(1, 503, match=COMMIT_ROUTE)
    commit = store.commit(REPO, "main", {"a.csv": b"1"}, message="m", author="a")
    assert store.branch_head(REPO, "main") == commit.id
    assert sleeper.calls == [0.5]


def test_500_on_commit_is_not_retried_because_it_may_have_applied(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore, sleeper: RecordingSleeper
) -> None:
    lakefs_server.faults.fail(1, 500, match=COMMIT_ROUTE)
    with pytest.raises(BackendUnavailableError, match="may or may not have been applied"):
        store.commit(REPO, "main", {"a.csv": b"1"}, message="m", author="a")
    assert sleeper.calls == []


def test_read_timeout_is_retried(lakefs_server: LakeFSEndpoint, sleeper: RecordingSleeper) -> None:
    store = make_store(lakefs_server, sleeper, timeout_s=0.3)
    store.create_repository(REPO)
    lakefs_server.faults.delay(1, 1.5)
    assert store.branch_head(REPO, "main")
    assert sleeper.calls == [0.5]


def test_connection_refused_raises_backend_unavailable(sleeper: RecordingSleeper) -> None:
    with socket.socket() as s:  # a port nobody listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = LakeFSDataStore(f"http://127.0.0.1:{port}", "key", "s3cr3t-value", sleeper=sleeper)
    with pytest.raises(BackendUnavailableError) as info:
        store.repository_exists(REPO)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)
    assert len(sleeper.calls) == 3


# -- lakeFS specifics --------------------------------------------------------------------------


def test_author_travels_in_metadata_while_lakefs_records_the_user(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore
) -> None:
    commit = store.commit(
        REPO, "main", {"a.csv": b"1"}, message="m", author="alice", metadata={"k": "v"}
    )
    assert (commit.author, dict(commit.metadata)) == ("alice", {"k": "v"})
    raw = lakefs_server.state.store.get_commit(REPO, commit.id)
    assert raw.author == lakefs_server.state.user  # the server's committer, as in lakeFS
    assert raw.metadata[AUTHOR_METADATA_KEY] == "alice"


def test_every_listing_follows_pagination(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore
) -> None:
    lakefs_server.state.max_per_page = 3  # the server returns fewer than the 1000 asked for
    files = {f"f/{i:02d}.csv": b"x" * i for i in range(1, 11)}
    store.commit(REPO, "main", files, message="many", author="a")
    for i in range(4):
        store.commit(REPO, "main", {"log.txt": str(i).encode()}, message=f"c{i}", author="a")
        store.create_branch(REPO, f"b{i}", "main")
    assert store.list_files(REPO, "main", "f/") == {p: len(d) for p, d in files.items()}
    history = store.log(REPO, "main")
    assert [c.message for c in history[:5]] == ["c3", "c2", "c1", "c0", "many"]
    assert len(history) == 6 and len(store.log(REPO, "main", limit=4)) == 4
    assert len(store.diff(REPO, history[-1].id, "main")) == len(files) + 1
    assert set(store.list_branches(REPO)) == {"main", "b0", "b1", "b2", "b3"}


def test_large_object_is_streamed_not_read_whole(store: LakeFSDataStore) -> None:
    size, chunk = 20 * 1024 * 1024, 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    store.commit(REPO, "main", {"big.bin": payload}, message="big", author="a")
    expected = hashlib.sha256(payload).hexdigest()
    del payload
    digest, total = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        with store.open(REPO, "main", "big.bin") as stream:
            while block := stream.read(chunk):
                digest.update(block)
                total += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (total, digest.hexdigest()) == (size, expected)
    assert peak < size // 3, f"peak {peak} bytes while streaming a {size}-byte object"


# -- configuration -----------------------------------------------------------------------------


def test_from_env_names_the_missing_variable() -> None:
    env = {ENV_ENDPOINT: "http://lakefs:8000", ENV_ACCESS_KEY_ID: "AKIA"}
    with pytest.raises(ConfigError, match=ENV_SECRET_ACCESS_KEY):
        LakeFSDataStore.from_env(env)


def test_from_env_builds_a_working_store(lakefs_server: LakeFSEndpoint) -> None:
    env = {
        ENV_ENDPOINT: lakefs_server.url,
        ENV_ACCESS_KEY_ID: lakefs_server.access_key_id,
        ENV_SECRET_ACCESS_KEY: lakefs_server.secret_access_key,
    }
    store = LakeFSDataStore.from_env(env)
    store.create_repository(REPO)
    assert store.repository_exists(REPO)
    assert_no_secret(repr(store), lakefs_server)


def test_storage_namespace_comes_from_env(lakefs_server: LakeFSEndpoint) -> None:
    env = {
        ENV_ENDPOINT: lakefs_server.url,
        ENV_ACCESS_KEY_ID: lakefs_server.access_key_id,
        ENV_SECRET_ACCESS_KEY: lakefs_server.secret_access_key,
        ENV_STORAGE_NAMESPACE: "s3://bucket/lakefs/{repository}",
    }
    LakeFSDataStore.from_env(env).create_repository(REPO)
    assert lakefs_server.state.namespaces[REPO] == f"s3://bucket/lakefs/{REPO}"


def test_every_server_endpoint_is_exercised_by_the_backend(
    lakefs_server: LakeFSEndpoint, store: LakeFSDataStore
) -> None:
    """Keeps docs/lakefs.md honest: the endpoints listed there are the ones the backend calls."""
    base = store.branch_head(REPO, "main")
    store.create_branch(REPO, "dev", base)
    store.commit(REPO, "dev", {"a.csv": b"1", "b.csv": b"2"}, message="m", author="a")
    store.commit(REPO, "dev", {"b.csv": None}, message="m", author="a")
    store.list_branches(REPO)
    store.resolve_ref(REPO, "dev")
    store.log(REPO, "dev")
    store.get_commit(REPO, base)
    store.list_files(REPO, "dev")
    store.read(REPO, "dev", "a.csv")
    store.diff(REPO, "main", "dev")
    store.merge(REPO, "dev", "main", message="m", author="a")
    store.reset_branch(REPO, "dev", base)
    store.repository_exists(REPO)
    used = set(lakefs_server.requests)
    served = {(m, "/api/v1" + p) for m, p, _ in _Api(lambda: lakefs_server.state).routes()}
    assert served - used == {("GET", "/api/v1/config")}  # served for the high-level package
    assert used <= served
