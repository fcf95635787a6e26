"""The ``store`` fixture: one DataStore per backend, so every contract test runs on each.

To add a backend, write a factory that takes the pytest request (so it can use other fixtures,
e.g. a session-scoped test server) and returns a store, then register it in STORE_FACTORIES.
Tests must talk to the store only through the DataStore Protocol and use ``repo_name``/``repo``
for repository names, which are unique per test so a shared server needs no cleanup.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from ml_platform.data.lakefs_store import LakeFSDataStore
from ml_platform.data.local import LocalDataStore
from ml_platform.data.store import DataStore
from tests.lakefs_server.fixtures import _lakefs_server_session, lakefs_server  # noqa: F401

StoreFactory = Callable[[pytest.FixtureRequest], DataStore]


def _local_store(request: pytest.FixtureRequest) -> DataStore:
    tmp_path = request.getfixturevalue("tmp_path")
    return LocalDataStore(tmp_path / "local-store")


def _lakefs_store(request: pytest.FixtureRequest) -> DataStore:
    # Real HTTP through the real lakefs_sdk to the lakeFS-API-compatible test server.
    server = request.getfixturevalue("lakefs_server")
    return LakeFSDataStore(server.url, server.access_key_id, server.secret_access_key)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "local": _local_store,
    "lakefs": _lakefs_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest) -> DataStore:
    return STORE_FACTORIES[request.param](request)


@pytest.fixture
def repo_name() -> str:
    """A repository name no other test uses (valid for lakeFS and the embedded store)."""
    return f"contract-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def repo(store: DataStore, repo_name: str) -> str:
    """A fresh repository with default branch 'main'."""
    store.create_repository(repo_name, default_branch="main")
    return repo_name
