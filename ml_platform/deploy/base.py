"""The deployer seam: what a deployment is, and where deployers remember what they started.

A deployer runs one model server per *variant* (a router variant name such as ``stable`` or
``canary``) of one project. Records live under ``<platform home>/deployments/<project>/`` so
a controller that restarts finds the servers it started and can health-check or stop them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from ml_platform.errors import DeploymentError
from ml_platform.serving.router_state import VARIANT_NAME

Backend = Literal["process", "docker"]
ArtifactT_contra = TypeVar("ArtifactT_contra", contravariant=True)


@dataclass(frozen=True)
class Endpoint:
    """A running model server: where to send requests and what it serves."""

    variant: str
    url: str  # http://127.0.0.1:<port>
    model_version: str
    model_digest: str
    backend: Backend


@dataclass(frozen=True)
class Health:
    variant: str
    running: bool  # the process/container exists
    ready: bool  # and answers /ready (model loaded, digest checked)
    detail: str
    endpoint: Endpoint | None = None


class Deployer(Protocol[ArtifactT_contra]):
    """Runs model servers by variant. ``deploy`` is idempotent: the same model on a healthy
    variant returns the running endpoint; another model replaces it. ``stop`` of a variant that
    is not deployed does nothing. Failures raise :class:`~ml_platform.errors.DeploymentError`."""

    def deploy(self, variant: str, model: ArtifactT_contra) -> Endpoint: ...

    def stop(self, variant: str) -> None: ...

    def health(self, variant: str) -> Health: ...

    def endpoint(self, variant: str) -> Endpoint | None:
        """The recorded endpoint of ``variant`` (None when nothing is deployed there)."""
        ...

    def rename(self, old: str, new: str) -> None:
        """Re-file a running deployment under another variant (promotion: canary -> stable)."""
        ...


@dataclass(frozen=True)
class DeploymentRecord:
    """What a deployer persists per variant."""

    project: str
    variant: str
    backend: Backend
    url: str
    port: int
    model_name: str
    model_version: str
    model_digest: str
    started_at: str
    pid: int | None = None  # process backend: the server is the leader of its process group
    container_id: str | None = None  # docker backend
    log_path: str | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint(self.variant, self.url, self.model_version, self.model_digest,
                        self.backend)


def check_variant(variant: str) -> str:
    if not VARIANT_NAME.fullmatch(variant):
        raise DeploymentError(f"variant name '{variant}' must match {VARIANT_NAME.pattern} "
                              "(it is also the router's variant name)")
    return variant


class DeploymentStore:
    """One JSON file per variant, written atomically, under ``root/<project>/``."""

    def __init__(self, root: Path, project: str) -> None:
        self.dir = Path(root) / project

    def path(self, variant: str) -> Path:
        return self.dir / f"{check_variant(variant)}.json"

    def load(self, variant: str) -> DeploymentRecord | None:
        path = self.path(variant)
        if not path.exists():
            return None
        try:
            return DeploymentRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as e:
            raise DeploymentError(f"deployment record '{path}' is unreadable: {e}; stop the "
                                  "server by hand if it still runs, then delete the file") from e

    def save(self, record: DeploymentRecord) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".deploy-", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(record), fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(record.variant))
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise DeploymentError(f"cannot record deployment {record.variant} in "
                                  f"{self.dir}: {e}") from e

    def delete(self, variant: str) -> None:
        self.path(variant).unlink(missing_ok=True)

    def all(self) -> list[DeploymentRecord]:
        if not self.dir.is_dir():
            return []
        records = (self.load(p.stem) for p in sorted(self.dir.glob("*.json")))
        return [r for r in records if r is not None]


def record_dict(record: DeploymentRecord) -> dict[str, Any]:
    return asdict(record)


# One compute thread per model server. Requests are single rows or small micro-batches, where
# OpenMP threads cannot help; and the OpenMP threads of several servers on the same cores
# spin-wait against each other: with two servers and 2 CPUs a canary step's p95 went from
# ~35 ms to ~1.8 s (make demo). Set OMP_NUM_THREADS in the deployer's environment to override.
SERVER_THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the server thread defaults."""
    import os

    env = dict(os.environ if base is None else base)
    for key, value in SERVER_THREADS_ENV.items():
        env.setdefault(key, value)
    return env
