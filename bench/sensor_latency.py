"""Data commit -> run start latency under `dagster dev` (daemon, sensor, run launcher, all real).

    .venv/bin/python bench/sensor_latency.py [--commits 20] [--interval 1] [--rows 600]

Starts `dagster dev` in its own process group (the `set -m` of API_NOTES gotcha 8: its signals
are not ignored, so the whole tree stops on SIGTERM) with a temporary DAGSTER_HOME and
ML_PLATFORM_HOME, the churn project only and ML_PLATFORM_SENSOR_INTERVAL_S=--interval. Then, per
commit: commit to the embedded store, poll the instance until the run for that commit has
started, wait for the run to finish (so runs do not pile up on the machine and skew the next
measurement), repeat. Prints median and p95 of commit -> run created (sensor) and commit -> run
started (sensor + queue + launch).
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_COMMIT_TAG = "ml_platform/data_commit"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"dagster dev did not answer {url} within {timeout_s:.0f}s")


def _start_dagster(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    dagster = str(ROOT / ".venv/bin/dagster")
    cmd = [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        # start_new_session: own process group (like `set -m`), default signal dispositions.
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _run_for(instance, commit: str):
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(tags={DATA_COMMIT_TAG: commit}), limit=1)
    return records[0] if records else None


def _wait_started(instance, commit: str, timeout_s: float) -> tuple[float, float]:
    """(created, started) epoch seconds of the run for ``commit``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rec = _run_for(instance, commit)
        if rec is not None and rec.start_time is not None:
            return rec.create_timestamp.timestamp(), rec.start_time
        time.sleep(0.1)
    raise TimeoutError(f"no run started for commit {commit[:12]} within {timeout_s:.0f}s")


def _wait_finished(instance, commit: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rec = _run_for(instance, commit)
        if rec is not None and rec.end_time is not None:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the run for {commit[:12]} did not finish within {timeout_s:.0f}s")


def _p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--interval", type=int, default=1, help="sensor minimum interval (s)")
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-sensor-"))
    home, dagster_home, projects = tmp / "platform", tmp / "dagster", tmp / "projects"
    for d in (home, dagster_home, projects):
        d.mkdir(parents=True)
    shutil.copy(ROOT / "deploy/dagster/dagster.yaml", dagster_home / "dagster.yaml")
    shutil.copy(ROOT / "projects/churn.yaml", projects / "churn.yaml")
    env = dict(
        os.environ,
        ML_PLATFORM_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
        ML_PLATFORM_PROJECTS=str(projects),
        ML_PLATFORM_SENSOR_INTERVAL_S=str(args.interval),
        ML_PLATFORM_DATA_BACKEND="local",
        DO_NOT_TRACK="1",
    )
    os.environ.update({k: env[k] for k in ("ML_PLATFORM_HOME", "DAGSTER_HOME")})

    import dagster as dg

    from ml_platform import dataset, demo_data
    from ml_platform.config import load_project
    from ml_platform.data.local import LocalDataStore
    from ml_platform.settings import platform_paths

    cfg = load_project(projects / "churn.yaml")
    store = LocalDataStore(platform_paths().data_store)
    store.create_repository(cfg.dataset.repository, default_branch=cfg.dataset.branch)

    def commit(seed: int) -> str:
        frame = demo_data.generate_churn(args.rows, seed=seed)
        payload = {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)}
        repo = cfg.dataset.repository
        return store.commit(repo, "main", payload, message=f"bench {seed}", author="bench").id

    port = _free_port()
    proc = _start_dagster(env, port, tmp / "dagster-dev.log")
    created_lat: list[float] = []
    started_lat: list[float] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 120)
        instance = dg.DagsterInstance.get()
        warm = commit(0)  # the sensor's first tick starts from this head; not measured
        _wait_started(instance, warm, args.timeout)
        _wait_finished(instance, warm, args.timeout * 2)
        for i in range(1, args.commits + 1):
            t0 = time.time()
            c = commit(i)
            created, started = _wait_started(instance, c, args.timeout)
            created_lat.append(created - t0)
            started_lat.append(started - t0)
            print(
                f"  commit {i:2d} {c[:12]}: run created +{created - t0:5.2f} s, "
                f"started +{started - t0:5.2f} s",
                flush=True,
            )
            _wait_finished(instance, c, args.timeout * 2)
    finally:
        _stop(proc)
    print(f"data commit -> run, {args.commits} commits, sensor interval {args.interval} s (s):")
    for name, xs in (("run created (sensor tick)", created_lat), ("run started (+ launch)", started_lat)):
        print(f"  {name:26s} median {statistics.median(xs):5.2f}  p95 {_p95(xs):5.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
