"""The embedded default deployer: model servers as local processes on loopback ports.

Each variant is ``python -m ml_platform.serving.server`` started from the registered model's
MLflow directory, in a process group of its own (so ``stop`` takes down anything it spawned),
on a free 127.0.0.1 port. Records under the platform home let a restarted controller find,
health-check and stop servers started by an earlier one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ml_platform._poll import Clock, Sleeper, free_port, wait_for_http
from ml_platform.deploy.base import (
    DeploymentRecord,
    DeploymentStore,
    Endpoint,
    Health,
    check_variant,
    server_environment,
)
from ml_platform.errors import DeploymentError
from ml_platform.tracking import ModelRef

log = logging.getLogger(__name__)
SERVER_MODULE = "ml_platform.serving.server"


class LocalProcessDeployer:
    """:class:`~ml_platform.deploy.base.Deployer` of :class:`ModelRef` as local processes."""

    def __init__(
        self,
        deployments_dir: Path,
        *,
        project: str,
        python: str = sys.executable,
        host: str = "127.0.0.1",
        ready_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        sample_rate: float = 0.05,
        clock: Clock = time.monotonic,
        sleeper: Sleeper = time.sleep,
    ) -> None:
        self.store = DeploymentStore(deployments_dir, project)
        self.project = project
        self._python, self._host = python, host
        self._ready_timeout, self._stop_timeout = ready_timeout, stop_timeout
        self._sample_rate = sample_rate
        self._clock, self._sleeper = clock, sleeper
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # reaped on stop

    # -- Deployer ------------------------------------------------------------------------------

    def deploy(self, variant: str, model: ModelRef) -> Endpoint:
        check_variant(variant)
        if model.digest is None:
            raise DeploymentError(f"{model.model_uri} has no recorded digest; only models "
                                  "registered through ModelRegistry.log_candidate are deployed")
        current = self.store.load(variant)
        if current is not None:
            if current.model_digest == model.digest and self._ready(current):
                return current.endpoint()  # idempotent: already serving this model
            self.stop(variant)
        return self._start(variant, model).endpoint()

    def stop(self, variant: str) -> None:
        record = self.store.load(variant)
        if record is None:
            return
        if record.pid is not None and self._is_ours(record):
            self._terminate(record.pid)
        self.store.delete(variant)
        log.info("stopped %s/%s (pid %s)", self.project, variant, record.pid)

    def health(self, variant: str) -> Health:
        record = self.store.load(variant)
        if record is None:
            return Health(variant, False, False, "not deployed")
        if not self._is_ours(record):
            return Health(variant, False, False, f"process {record.pid} is not running",
                          record.endpoint())
        ready = self._ready(record)
        detail = "ready" if ready else f"process {record.pid} runs but {record.url}/ready fails"
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

    def endpoints(self) -> list[Endpoint]:
        """Every recorded deployment of the project (running or not)."""
        return [r.endpoint() for r in self.store.all()]

    # -- processes -----------------------------------------------------------------------------

    def _start(self, variant: str, model: ModelRef) -> DeploymentRecord:
        assert model.digest is not None
        port = free_port(self._host)
        self.store.dir.mkdir(parents=True, exist_ok=True)
        log_path = self.store.dir / f"{variant}.log"
        args = [self._python, "-m", SERVER_MODULE, "--model-dir", str(model.artifact_path),
                "--host", self._host, "--port", str(port), "--variant", variant,
                "--expected-digest", model.digest, "--model-version", str(model.version),
                "--sample-log", str(self.store.dir / f"{variant}.samples.jsonl"),
                "--sample-rate", str(self._sample_rate)]
        with log_path.open("ab") as out:
            try:
                proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env=server_environment())
            except OSError as e:
                raise DeploymentError(f"cannot start the model server for {variant}: {e}") from e
        self._children[proc.pid] = proc
        record = DeploymentRecord(
            project=self.project, variant=variant, backend="process",
            url=f"http://{self._host}:{port}", port=port, model_name=model.name,
            model_version=str(model.version), model_digest=model.digest,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"), pid=proc.pid,
            log_path=str(log_path),
        )
        self.store.save(record)  # before waiting: a crash mid-wait still leaves a findable pid
        self._wait_ready(record, proc, log_path)
        log.info("deployed %s v%s as %s/%s at %s", model.name, model.version, self.project,
                 variant, record.url)
        return record

    def _wait_ready(self, record: DeploymentRecord, proc: subprocess.Popen[bytes],
                    log_path: Path) -> None:
        def alive() -> str | None:
            code = proc.poll()
            return None if code is None else f"the server exited with code {code}"

        result = wait_for_http(f"{record.url}/ready", timeout=self._ready_timeout, alive=alive,
                               clock=self._clock, sleeper=self._sleeper)
        if result.ok:
            return
        self.stop(record.variant)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise DeploymentError(
            f"model server for {self.project}/{record.variant} (v{record.model_version}) was not "
            f"ready within {self._ready_timeout:.0f} s: {result.last}. Server log "
            f"{log_path} ends with:\n{tail}"
        )

    def _ready(self, record: DeploymentRecord) -> bool:
        if not self._is_ours(record):
            return False
        try:
            return httpx.get(f"{record.url}/ready", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def _is_ours(self, record: DeploymentRecord) -> bool:
        """The pid is alive and still our server on our port (pids get reused)."""
        if record.pid is None:
            return False
        proc = Path(f"/proc/{record.pid}")
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                self._reap(record.pid)
                return False
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return SERVER_MODULE.encode() in cmdline and str(record.port).encode() in cmdline

    def _terminate(self, pid: int) -> None:
        """SIGTERM the server's process group, then SIGKILL it after ``stop_timeout``."""
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = self._clock() + self._stop_timeout
        while self._clock() < deadline:
            if self._exited(pid):
                return
            self._sleeper(0.1)
        log.warning("server pid %d ignored SIGTERM for %.0f s: killing it", pid,
                    self._stop_timeout)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._reap(pid)

    def _exited(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is not None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state == "Z"

    def _reap(self, pid: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait(timeout=self._stop_timeout)
