"""Where the embedded platform keeps its state. Resolved when called, never at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "ML_PLATFORM_HOME"
DEFAULT_HOME = ".ml-platform"


@dataclass(frozen=True)
class PlatformPaths:
    """The embedded defaults' layout under one home folder."""

    home: Path

    @property
    def data_store(self) -> Path:
        return self.home / "data"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow" / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def notifications(self) -> Path:
        return self.home / "notifications.jsonl"

    @property
    def deployments(self) -> Path:
        return self.home / "deployments"

    def ensure(self) -> PlatformPaths:
        for d in (self.data_store, self.mlflow_db.parent, self.mlflow_artifact_root, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        return self


def platform_paths(home: str | os.PathLike[str] | None = None) -> PlatformPaths:
    """Explicit ``home``, else $ML_PLATFORM_HOME, else ./.ml-platform; always absolute."""
    chosen = home or os.environ.get(HOME_ENV) or DEFAULT_HOME
    return PlatformPaths(Path(chosen).expanduser().resolve())
