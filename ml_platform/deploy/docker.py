"""Model images as containers on this machine's Docker engine, with host networking.

There is no bridge network here (dockerd runs with ``--bridge=none``), so each container shares
the host's network and its server binds a free 127.0.0.1 port chosen by the deployer.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
import httpx
from docker.models.containers import Container

from ml_platform._poll import Clock, Sleeper, free_port, wait_for_http
from ml_platform.deploy.base import (
    SERVER_THREADS_ENV,
    DeploymentRecord,
    DeploymentStore,
    Endpoint,
    Health,
    check_variant,
)
from ml_platform.errors import DeploymentError
from ml_platform.images.build import LABEL_MODEL_DIGEST, LABEL_MODEL_VERSION, ImageRef

log = logging.getLogger(__name__)


class DockerDeployer:
    """:class:`~ml_platform.deploy.base.Deployer` of model images (:class:`ImageRef`)."""

    def __init__(
        self,
        client: docker.DockerClient,
        deployments_dir: Path,
        *,
        project: str,
        ready_timeout: float = 180.0,
        stop_timeout: int = 10,
        clock: Clock = time.monotonic,
        sleeper: Sleeper = time.sleep,
    ) -> None:
        self.client = client
        self.store = DeploymentStore(deployments_dir, project)
        self.project = project
        self._ready_timeout, self._stop_timeout = ready_timeout, stop_timeout
        self._clock, self._sleeper = clock, sleeper

    def deploy(self, variant: str, model: ImageRef) -> Endpoint:
        check_variant(variant)
        current = self.store.load(variant)
        if current is not None:
            if current.model_digest == model.model_digest and self._ready(current):
                return current.endpoint()
            self.stop(variant)
        return self._start(variant, model).endpoint()

    def stop(self, variant: str) -> None:
        record = self.store.load(variant)
        if record is None:
            return
        container = self._container(record)
        if container is not None:
            try:
                container.stop(timeout=self._stop_timeout)
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                raise DeploymentError(f"cannot stop container {container.short_id} of "
                                      f"{self.project}/{variant}: {e}") from e
        self.store.delete(variant)

    def health(self, variant: str) -> Health:
        record = self.store.load(variant)
        if record is None:
            return Health(variant, False, False, "not deployed")
        container = self._container(record)
        if container is None or container.status != "running":
            state = "gone" if container is None else container.status
            return Health(variant, False, False, f"container {state}", record.endpoint())
        ready = self._ready(record)
        detail = "ready" if ready else f"container runs but {record.url}/ready fails"
        return Health(variant, True, ready, detail, record.endpoint())

    def endpoint(self, variant: str) -> Endpoint | None:
        record = self.store.load(variant)
        return None if record is None else record.endpoint()

    def rename(self, old: str, new: str) -> None:
        record = self.store.load(old)
        if record is None:
            raise DeploymentError(f"no deployment '{old}' of {self.project} to rename to '{new}'")
        if self.store.load(new) is not None:
            raise DeploymentError(f"variant '{new}' of {self.project} is still deployed; stop it "
                                  f"before moving '{old}' there")
        self.store.save(DeploymentRecord(**{**record.__dict__, "variant": check_variant(new)}))
        self.store.delete(old)

    # -- containers ----------------------------------------------------------------------------

    def _start(self, variant: str, image: ImageRef) -> DeploymentRecord:
        port = free_port()
        try:
            container = self.client.containers.run(
                image.image_id, detach=True, network_mode="host",
                environment={"PORT": str(port), "HOST": "127.0.0.1", "VARIANT": variant,
                             **SERVER_THREADS_ENV},
                labels={"mlplatform.project": self.project, "mlplatform.variant": variant,
                        "mlplatform.image": image.reference},
            )
        except docker.errors.APIError as e:
            raise DeploymentError(f"cannot start {image.reference} as {self.project}/{variant}: "
                                  f"{e}") from e
        record = DeploymentRecord(
            project=self.project, variant=variant, backend="docker",
            url=f"http://127.0.0.1:{port}", port=port,
            model_name=image.labels.get("mlplatform.model_name", self.project),
            model_version=image.labels.get(LABEL_MODEL_VERSION, str(image.model_version)),
            model_digest=image.labels.get(LABEL_MODEL_DIGEST, image.model_digest),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            container_id=str(container.id),
        )
        self.store.save(record)
        result = wait_for_http(f"{record.url}/ready", timeout=self._ready_timeout,
                               alive=lambda: _stopped(container), clock=self._clock,
                               sleeper=self._sleeper)
        if not result.ok:
            logs = _logs(container)
            self.stop(variant)
            raise DeploymentError(
                f"{image.reference} as {self.project}/{variant} was not ready within "
                f"{self._ready_timeout:.0f} s: {result.last}. Container log ends with:\n{logs}"
            )
        log.info("deployed %s as %s/%s at %s", image.reference, self.project, variant, record.url)
        return record

    def _container(self, record: DeploymentRecord) -> Container | None:
        if record.container_id is None:
            return None
        try:
            return self.client.containers.get(record.container_id)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            raise DeploymentError(f"cannot inspect container of {self.project}/"
                                  f"{record.variant}: {e}") from e

    def _ready(self, record: DeploymentRecord) -> bool:
        container = self._container(record)
        if container is None or container.status != "running":
            return False
        try:
            return httpx.get(f"{record.url}/ready", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False


def _stopped(container: Container) -> str | None:
    try:
        container.reload()
    except docker.errors.NotFound:
        return "the container was removed"
    except docker.errors.APIError as e:
        raise DeploymentError(f"cannot inspect container {container.short_id}: {e}") from e
    if container.status in ("exited", "dead"):
        return f"the container exited with code {container.attrs['State'].get('ExitCode')}"
    return None


def _logs(container: Container) -> str:
    try:
        return container.logs(tail=40).decode("utf-8", "replace")
    except docker.errors.APIError as e:
        return f"(logs unavailable: {e})"
