"""Open the configured data store: the embedded store by default, lakeFS when selected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ml_platform.data.store import DataStore
from ml_platform.errors import ConfigError
from ml_platform.settings import platform_paths

BACKEND_ENV = "ML_PLATFORM_DATA_BACKEND"
Backend = Literal["local", "lakefs"]


def open_store(backend: str | None = None, *, local_root: str | Path | None = None) -> DataStore:
    """``backend`` (or $ML_PLATFORM_DATA_BACKEND, default 'local'); lakeFS reads LAKECTL_* variables."""
    chosen = backend or os.environ.get(BACKEND_ENV) or "local"
    if chosen == "local":
        from ml_platform.data.local import LocalDataStore

        return LocalDataStore(local_root or platform_paths().data_store)
    if chosen == "lakefs":
        from ml_platform.data.lakefs_store import LakeFSDataStore

        return LakeFSDataStore.from_env()
    raise ConfigError(f"unknown data backend '{chosen}'; use 'local' or 'lakefs'", field=BACKEND_ENV)
