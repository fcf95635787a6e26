"""Pieces of :mod:`ml_platform.cd` that are not the rollout logic itself.

* :class:`RouterProcess` – one ``python -m ml_platform.serving.router`` per environment,
  recorded (pid, port) so that a later controller finds, health-checks or restarts it;
* :class:`PersistedWindowMetrics` – the router metrics source whose analysis window survives the
  controller process (a sensor tick is a new process; an in-memory baseline would be lost);
* :func:`probe_predict` – one timed prediction, shared by the smoke gates.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ml_platform._poll import Clock, Sleeper, free_port, wait_for_http
from ml_platform.deploy.router import RouterMetricsSource, _Counts
from ml_platform.errors import DeploymentError

log = logging.getLogger(__name__)
ROUTER_MODULE = "ml_platform.serving.router"


def write_json_atomic(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DeploymentError(f"cannot write {path}: {e}") from e


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DeploymentError(f"{path} is unreadable: {e}; delete it to start afresh") from e
    if not isinstance(data, dict):
        raise DeploymentError(f"{path}: expected a JSON object")
    return data


@dataclass(frozen=True)
class RouterRecord:
    pid: int
    port: int
    url: str
    started_at: str


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # as uvicorn binds: a port whose old connections linger in TIME_WAIT is still usable
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pid_runs(pid: int, *needles: str) -> bool:
    """``pid`` is alive (not a zombie) and its command line holds every needle."""
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return all(n.encode() in cmdline for n in needles)


class RouterProcess:
    """The environment's router: started once, found again from its record, restarted if dead.

    The router keeps its weights in ``state_file`` (written before each change takes effect),
    so a restarted router serves the split it had. It is restarted on its old port when that
    port is still free, so clients keep their URL.
    """

    def __init__(self, folder: Path, token_file: Path, *, python: str = sys.executable,
                 host: str = "127.0.0.1", ready_timeout: float = 30.0,
                 stop_timeout: float = 10.0, clock: Clock = time.monotonic,
                 sleeper: Sleeper = time.sleep) -> None:
        self.state_file = folder / "router-state.json"
        self.record_file = folder / "router.json"
        self.log_file = folder / "router.log"
        self._token_file, self._python, self._host = token_file, python, host
        self._ready_timeout, self._stop_timeout = ready_timeout, stop_timeout
        self._clock, self._sleeper = clock, sleeper
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def record(self) -> RouterRecord | None:
        data = read_json(self.record_file)
        return None if data is None else RouterRecord(**data)

    def running(self) -> RouterRecord | None:
        rec = self.record()
        if rec is None or not pid_runs(rec.pid, ROUTER_MODULE, str(rec.port)):
            return None
        return rec

    def ensure(self, stable_url: str) -> RouterRecord:
        """The running router, or a new one (initial state: ``stable`` at 100 %)."""
        rec = self.running()
        if rec is not None and wait_for_http(f"{rec.url}/ready", timeout=5.0, clock=self._clock,
                                             sleeper=self._sleeper).ok:
            return rec
        if rec is not None:
            self.stop()
        return self._start(stable_url)

    def _start(self, stable_url: str) -> RouterRecord:
        old = self.record()
        port = old.port if old is not None and _port_free(self._host, old.port) else free_port(
            self._host)
        args = [self._python, "-m", ROUTER_MODULE, "--host", self._host, "--port", str(port),
                "--state-file", str(self.state_file),
                "--admin-token-file", str(self._token_file)]
        if not self.state_file.exists():
            args += ["--variant", f"stable={stable_url}", "--weight", "stable=100"]
        self.record_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            try:
                proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                raise DeploymentError(f"cannot start the router: {e}") from e
        self._children[proc.pid] = proc
        rec = RouterRecord(proc.pid, port, f"http://{self._host}:{port}",
                           datetime.now(UTC).isoformat(timespec="seconds"))
        write_json_atomic(self.record_file, asdict(rec))
        result = wait_for_http(f"{rec.url}/ready", timeout=self._ready_timeout,
                               alive=lambda: None if proc.poll() is None else "router exited",
                               clock=self._clock, sleeper=self._sleeper)
        if not result.ok:
            self.stop()
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise DeploymentError(f"router was not ready within {self._ready_timeout:.0f} s at "
                                  f"{rec.url}: {result.last}. {self.log_file} ends with:\n{tail}")
        log.info("router started at %s (pid %d)", rec.url, rec.pid)
        return rec

    def stop(self) -> None:
        """SIGTERM the router's process group, SIGKILL after ``stop_timeout``; keeps its state."""
        rec = self.record()
        if rec is None or not pid_runs(rec.pid, ROUTER_MODULE, str(rec.port)):
            return
        try:
            os.killpg(rec.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = self._clock() + self._stop_timeout
        while self._clock() < deadline and pid_runs(rec.pid, ROUTER_MODULE):
            self._reap(rec.pid, block=False)
            self._sleeper(0.05)
        if pid_runs(rec.pid, ROUTER_MODULE):
            os.killpg(rec.pid, signal.SIGKILL)
        self._reap(rec.pid, block=True)

    def _reap(self, pid: int, *, block: bool) -> None:
        child = self._children.get(pid)
        if child is None:
            return
        if block:
            child.wait(timeout=self._stop_timeout)
        elif child.poll() is None:
            return
        self._children.pop(pid, None)


def _counts_to_json(c: _Counts) -> dict[str, Any]:
    data = asdict(c)
    data["buckets"] = {repr(le): n for le, n in c.buckets.items()}
    return data


def _counts_from_json(d: dict[str, Any]) -> _Counts:
    buckets = {float(le): float(n) for le, n in d.get("buckets", {}).items()}
    return _Counts(**{**d, "buckets": buckets})


class PersistedWindowMetrics(RouterMetricsSource):
    """:class:`RouterMetricsSource` whose window start (``mark``) is kept in a file per rollout.

    Each reconcile runs in a fresh process (sensor tick, CLI), so the baseline must outlive it:
    without it, every analysis would count a router's whole life, including earlier rollouts.
    """

    def __init__(self, router_url: str, token: str, path: Path, rollout_id: str) -> None:
        super().__init__(router_url, token)
        self._path, self._rollout_id = path, rollout_id
        self.unreachable: list[str] = []
        data = read_json(path)
        if data is not None and data.get("rollout_id") == rollout_id:
            self._baseline = {k: _counts_from_json(v) for k, v in data["baseline"].items()}
        self.marked = data is not None and data.get("rollout_id") == rollout_id

    def _scrape(self, url: str) -> str:
        try:
            return super()._scrape(url)
        except DeploymentError:
            if url.rstrip("/") == f"{self.router_url}/metrics":
                raise
            # a variant server that is down: the router's counts (its 502s) still judge it;
            # only its score and feedback counters are missing from this analysis
            log.warning("variant server metrics unavailable at %s; judging on router counts",
                        url)
            self.unreachable.append(url)
            return ""

    def mark(self) -> None:
        super().mark()
        baseline = {k: _counts_to_json(v) for k, v in self._baseline.items()}
        write_json_atomic(self._path, {"rollout_id": self._rollout_id, "baseline": baseline,
                                       "marked_at": datetime.now(UTC).isoformat()})
        self.marked = True


@dataclass(frozen=True)
class Probe:
    status: int
    latency_ms: float
    body: dict[str, Any]


def probe_predict(client: httpx.Client, url: str, records: list[dict[str, Any]]) -> Probe:
    start = time.perf_counter()
    try:
        reply = client.post(f"{url.rstrip('/')}/predict", json={"records": records})
    except httpx.HTTPError as e:
        raise DeploymentError(f"POST {url}/predict failed: {type(e).__name__}: {e}") from e
    ms = 1000 * (time.perf_counter() - start)
    body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") \
        else {}
    return Probe(reply.status_code, ms, body if isinstance(body, dict) else {})


def p95(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
