"""Serving throughput and latency: our router + server vs our server vs in-process vs mlflow serve.

    .venv/bin/python bench/serving.py [--seconds 20] [--concurrency 8]

Single-row requests from `concurrency` keep-alive connections on loopback, each target measured
for `--seconds` after a short warm-up, one worker process per server. The load generator is a
minimal raw-socket HTTP/1.1 client so its own CPU cost (the machine has 2 cores) stays small and
is the same for every target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.serving_support import one_record, save_model  # noqa: E402

TOKEN = "bench-admin-token-0123456789"


@dataclass(frozen=True)
class Result:
    target: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connection(port: int, request: bytes, until: float, lat: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return errors


async def _load(port: int, path: str, body: bytes, seconds: float, concurrency: int
                ) -> tuple[list[float], int, float]:
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    lat: list[float] = []
    start = time.perf_counter()
    errors = await asyncio.gather(*(_connection(port, request, start + seconds, lat)
                                    for _ in range(concurrency)))
    return lat, sum(errors), time.perf_counter() - start


def measure_http(target: str, port: int, path: str, body: bytes, seconds: float,
                 concurrency: int) -> Result:
    asyncio.run(_load(port, path, body, min(2.0, seconds / 5), concurrency))  # warm-up
    lat, errors, elapsed = asyncio.run(_load(port, path, body, seconds, concurrency))
    ms = np.array(lat) * 1000
    return Result(target, len(lat), errors, elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)))


def measure_in_process(model_dir: Path, seconds: float) -> Result:
    import mlflow.sklearn
    import pandas as pd

    model = mlflow.sklearn.load_model(str(model_dir))
    frame = pd.DataFrame([one_record()])
    lat = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        start = time.perf_counter()
        model.predict_proba(frame)
        lat.append(time.perf_counter() - start)
    ms = np.array(lat) * 1000
    return Result("in-process predict_proba", len(lat), 0, float(ms.sum() / 1000),
                  float(np.percentile(ms, 50)), float(np.percentile(ms, 99)))


class Service:
    def __init__(self, args: list[str], ready_url: str, log: Path) -> None:
        self._log = log.open("w")
        # mlflow serve execs `uvicorn` by name: the venv's bin must be on PATH
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=ROOT, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{ready_url} not ready in 120 s")

    def stop(self) -> None:
        self.popen.terminate()  # our own child, by its handle
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


def our_server(model_dir: Path, tmp: Path) -> tuple[Service, int]:
    port = free_port()
    svc = Service([sys.executable, "-m", "ml_platform.serving.server", "--model-dir",
                   str(model_dir), "--port", str(port), "--variant", "stable",
                   "--sample-log", str(tmp / "samples.jsonl"), "--sample-rate", "0.05"],
                  f"http://127.0.0.1:{port}/ready", tmp / "server.log")
    return svc, port


def our_router(upstream_port: int, tmp: Path) -> tuple[Service, int]:
    port = free_port()
    env_token = tmp / "token"
    env_token.write_text(TOKEN)
    svc = Service([sys.executable, "-m", "ml_platform.serving.router", "--port", str(port),
                   "--state-file", str(tmp / "router.json"), "--admin-token-file",
                   str(env_token), "--variant", f"stable=http://127.0.0.1:{upstream_port}",
                   "--weight", "stable=100"],
                  f"http://127.0.0.1:{port}/ready", tmp / "router.log")
    return svc, port


def mlflow_serve(model_dir: Path, tmp: Path) -> tuple[Service, int]:
    port = free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    svc = Service([mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager",
                   "local", "-p", str(port), "-h", "127.0.0.1", "-w", "1"],
                  f"http://127.0.0.1:{port}/ping", tmp / "mlflow.log")
    return svc, port


def run_with(start: Callable[[], list[tuple[Service, int]]],
             measure: Callable[[int], Result]) -> Result:
    services = start()
    try:
        return measure(services[-1][1])
    finally:
        for svc, _ in reversed(services):
            svc.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_dir = save_model(tmp / "model")
    ours = json.dumps({"records": [one_record()]}).encode()
    theirs = json.dumps({"dataframe_records": [one_record()]}).encode()
    secs, conc = args.seconds, args.concurrency

    def with_router() -> list[tuple[Service, int]]:
        server = our_server(model_dir, tmp)
        return [server, our_router(server[1], tmp)]

    results = [
        run_with(with_router,
                 lambda port: measure_http("router + server", port, "/predict", ours, secs,
                                           conc)),
        run_with(lambda: [our_server(model_dir, tmp)],
                 lambda port: measure_http("server alone", port, "/predict", ours, secs, conc)),
        measure_in_process(model_dir, min(secs, 5.0)),
        run_with(lambda: [mlflow_serve(model_dir, tmp)],
                 lambda port: measure_http("mlflow models serve", port, "/invocations", theirs,
                                           secs, conc)),
    ]
    print_table(results, secs, conc)


def print_table(results: list[Result], seconds: float, concurrency: int) -> None:
    baseline = next(r for r in results if r.target == "mlflow models serve")
    print(f"\nsingle-row requests, concurrency {concurrency}, {seconds:.0f} s per target, "
          f"1 worker each, {os.cpu_count()} CPUs\n")
    print(f"{'target':<26} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs mlflow':>10}")
    for r in results:
        print(f"{r.target:<26} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7} "
              f"{r.rps / baseline.rps:>9.1f}x")
    router = results[0]
    ok = router.rps >= 3 * baseline.rps and router.p99_ms <= 100
    print(f"\ntarget router+server >= 3x mlflow serve and p99 <= 100 ms: "
          f"{'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
