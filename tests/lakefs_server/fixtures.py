"""Run the lakeFS-compatible test server with uvicorn on a free 127.0.0.1 port.

One server thread serves the whole session (starting uvicorn per test would dominate the run
time); each test gets fresh state: a new embedded store in its tmp_path, no faults, an empty
request log. Register with ``pytest_plugins = ["tests.lakefs_server.fixtures"]``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from tests.lakefs_server.app import Faults, ServerState, create_app

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "test-secret-wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
_STARTUP_TIMEOUT_S = 10.0


def _new_store(root: Path) -> object:
    # Imported lazily: the embedded store is written concurrently with this server.
    from ml_platform.data.local import LocalDataStore

    return LocalDataStore(root)


class LakeFSTestServer:
    """A running server whose state can be swapped (see :meth:`reset`)."""

    def __init__(self, initial: ServerState) -> None:
        self._state = initial
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(lambda: self._state), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> ServerState:
        return self._state

    def reset(self, state: ServerState) -> None:
        self._state = state

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"lakeFS test server did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=_STARTUP_TIMEOUT_S)
        self._sock.close()


@dataclass(frozen=True)
class LakeFSEndpoint:
    """What a test needs: where the server is, the key pair, its store, faults and request log."""

    url: str
    access_key_id: str
    secret_access_key: str
    state: ServerState

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.state.requests


def _state(root: Path) -> ServerState:
    return ServerState(
        store=_new_store(root),  # type: ignore[arg-type]
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )


@pytest.fixture(scope="session")
def _lakefs_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakeFSTestServer]:
    server = LakeFSTestServer(_state(tmp_path_factory.mktemp("lakefs-initial")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lakefs_server(_lakefs_server_session: LakeFSTestServer, tmp_path: Path) -> LakeFSEndpoint:
    """A lakeFS-API-compatible server over real HTTP with a fresh, empty store for this test."""
    state = _state(tmp_path / "lakefs-server-store")
    _lakefs_server_session.reset(state)
    return LakeFSEndpoint(
        url=_lakefs_server_session.url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        state=state,
    )
