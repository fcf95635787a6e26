"""Resources over the platform's backends. Selecting a backend is configuration.

Nothing here reads the environment at import: paths resolve when a resource is used, and
secrets arrive through ``dg.EnvVar`` (see definitions.py).
"""

import os
from functools import cached_property
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ml_platform.data.store import DataStore
from ml_platform.errors import ConfigError
from ml_platform.settings import PlatformPaths, platform_paths
from ml_platform.tracking import ModelRegistry


class PlatformResource(dg.ConfigurableResource):
    """Where the embedded platform keeps reports and state ('' = $ML_PLATFORM_HOME or ./.ml-platform)."""

    home: str = ""
    reports_url: str = ""  # '' = $ML_PLATFORM_REPORTS_URL (set by `make ui`, which serves the reports)


    @cached_property
    def paths(self) -> PlatformPaths:
        return platform_paths(self.home or None).ensure()

    @property
    def reports_base_url(self) -> str:
        return self.reports_url or os.environ.get("ML_PLATFORM_REPORTS_URL", "")


class DataStoreResource(dg.ConfigurableResource):
    """The data versioning backend: the embedded store (default) or lakeFS."""

    backend: Literal["local", "lakefs"] = "local"
    local_root: str = ""  # '' = <platform home>/data
    lakefs_endpoint: str | None = None
    lakefs_access_key_id: str | None = None
    lakefs_secret_access_key: str | None = None  # dg.EnvVar only; never logged

    _store: DataStore | None = PrivateAttr(default=None)

    def store(self) -> DataStore:
        if self._store is None:
            self._store = self._build()
        return self._store

    def _build(self) -> DataStore:
        if self.backend == "local":
            from ml_platform.data.local import LocalDataStore

            return LocalDataStore(self.local_root or platform_paths().data_store)
        missing = [
            name
            for name, value in (
                ("lakefs_endpoint", self.lakefs_endpoint),
                ("lakefs_access_key_id", self.lakefs_access_key_id),
                ("lakefs_secret_access_key", self.lakefs_secret_access_key),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                "the lakeFS backend needs an endpoint and credentials; set LAKECTL_SERVER_ENDPOINT_URL, "
                "LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                source="DataStoreResource",
                field=", ".join(missing),
            )
        from ml_platform.data.lakefs_store import LakeFSDataStore

        return LakeFSDataStore(
            self.lakefs_endpoint or "",
            self.lakefs_access_key_id or "",
            self.lakefs_secret_access_key or "",
        )


class ModelRegistryResource(dg.ConfigurableResource):
    """MLflow tracking + registry ('' = SQLite store and local artifact root under the platform home)."""

    tracking_uri: str = ""
    artifact_root: str = ""

    _registry: ModelRegistry | None = PrivateAttr(default=None)

    def registry(self) -> ModelRegistry:
        if self._registry is None:
            paths = platform_paths().ensure()
            self._registry = ModelRegistry(
                tracking_uri=self.tracking_uri or paths.mlflow_tracking_uri,
                artifact_root=self.artifact_root or paths.mlflow_artifact_root,
            )
        return self._registry
