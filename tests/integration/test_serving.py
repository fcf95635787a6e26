"""Real processes: model servers and the router under uvicorn on 127.0.0.1, talking HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.serving import directory_digest
from tests.unit.serving_support import one_record, save_model

pytestmark = pytest.mark.integration
TOKEN = "integration-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process serving HTTP on 127.0.0.1:port; stopped by its own pid only."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.port, self.url, self.log = port, f"http://127.0.0.1:{port}", log
        self._fh = log.open("w")
        self.popen = subprocess.Popen([sys.executable, "-m", *args, "--port", str(port)],
                                      stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"exited {self.popen.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"{self.url} not ready after {timeout}s: {self.log.read_text()}")

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._fh.close()


def start_server(model_dir: Path, variant: str, tmp: Path, digest: str) -> Proc:
    return Proc(["ml_platform.serving.server", "--model-dir", str(model_dir),
                 "--variant", variant, "--expected-digest", digest,
                 "--sample-log", str(tmp / f"{variant}.jsonl"), "--sample-rate", "1.0"],
                free_port(), tmp / f"{variant}.log")


def start_router(tmp: Path, port: int, variants: dict[str, tuple[str, int]]) -> Proc:
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    args = ["ml_platform.serving.router", "--state-file", str(tmp / "router.json"),
            "--admin-token-file", str(token_file)]
    for name, (url, weight) in variants.items():
        args += ["--variant", f"{name}={url}", "--weight", f"{name}={weight}"]
    return Proc(args, port, tmp / "router.log")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("serving-it")
    model_dir = save_model(tmp / "model")
    digest = directory_digest(model_dir)
    servers = {v: start_server(model_dir, v, tmp, digest) for v in ("stable", "canary")}
    router_port = free_port()
    router = start_router(tmp, router_port,
                          {v: (p.url, 50) for v, p in servers.items()})
    stack: dict[str, Any] = {"tmp": tmp, "model_dir": model_dir, "servers": servers,
                             "router": router, "router_port": router_port}
    try:
        for p in (*servers.values(), router):
            p.wait_ready()
        yield stack
    finally:
        # stack["router"] is whichever router runs now: a test restarts it
        for p in (*servers.values(), stack["router"]):
            p.stop()


def test_predict_and_feedback_through_the_router(stack: dict[str, Any]) -> None:
    router = stack["router"].url
    with httpx.Client(base_url=router, timeout=10) as c:
        replies = [c.post("/predict", json={"records": [one_record(i % 5)]}) for i in range(40)]
        assert all(r.status_code == 200 for r in replies)
        by_variant = Counter(r.json()["variant"] for r in replies)
        assert set(by_variant) == {"stable", "canary"}
        for r in replies:
            body = r.json()
            fb = c.post("/feedback", json={"request_id": body["request_id"],
                                           "label": body["predictions"][0]})
            assert fb.status_code == 200 and fb.json()["correct"] is True
        bad = c.post("/predict", json={"records": [{**one_record(), "visits": "many"}]})
        assert bad.status_code == 422 and bad.json()["field"] == "visits"
        metrics = c.get("/metrics").text
    for variant, server in stack["servers"].items():
        stats = httpx.get(f"{server.url}/stats").json()
        assert stats["feedback"] >= by_variant[variant] and stats["live_accuracy"] == 1.0
    assert 'router_requests_total{endpoint="predict",status="200",variant="canary"}' in metrics
    logged = (stack["tmp"] / "stable.jsonl").read_text().splitlines()
    assert len(logged) >= by_variant["stable"]


def test_weight_flips_under_load_drop_no_request(stack: dict[str, Any]) -> None:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=stack["router"].url, timeout=20) as c:
            async def flip() -> None:
                for i in range(10):
                    weights = {"stable": 100 * (i % 2), "canary": 100 * (1 - i % 2)}
                    r = await c.put("/admin/weights", json={"weights": weights}, headers=AUTH)
                    assert r.status_code == 200
                    await asyncio.sleep(0.02)

            calls = [c.post("/predict", json={"records": [one_record()]}) for _ in range(150)]
            replies, _ = await asyncio.gather(asyncio.gather(*calls), flip())
            await c.put("/admin/weights", json={"weights": {"stable": 50, "canary": 50}},
                        headers=AUTH)
            return [r.status_code for r in replies]

    assert asyncio.run(run()) == [200] * 150


def test_router_restart_keeps_the_weights(stack: dict[str, Any]) -> None:
    router: Proc = stack["router"]
    r = httpx.put(f"{router.url}/admin/weights", json={"weights": {"stable": 80, "canary": 20}},
                  headers=AUTH)
    assert r.status_code == 200
    assert httpx.get(f"{router.url}/admin/weights").status_code == 401
    router.stop()
    servers = stack["servers"]
    restarted = start_router(stack["tmp"], stack["router_port"],
                             {v: (p.url, 50) for v, p in servers.items()})
    stack["router"] = restarted
    restarted.wait_ready()
    assert httpx.get(f"{restarted.url}/admin/weights", headers=AUTH).json() == {
        "weights": {"stable": 80, "canary": 20}}


def test_digest_mismatch_refuses_to_start(stack: dict[str, Any], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ml_platform.serving.server", "--model-dir",
         str(stack["model_dir"]), "--variant", "x", "--port", str(free_port()),
         "--expected-digest", "0" * 64],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "DeploymentError" in proc.stderr and "refusing to serve" in proc.stderr


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=100),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                 max_leaves=8).map(lambda v: {"records": [v]} if isinstance(v, dict) else v)
    .map(lambda v: json.dumps(v).encode()),
))
def test_fuzzed_bodies_over_http_get_4xx(stack: dict[str, Any], body: bytes) -> None:
    for target in (stack["servers"]["stable"].url, stack["router"].url):
        r = httpx.post(f"{target}/predict", content=body, timeout=10)
        assert r.status_code in (200, 400, 413, 422), (target, r.status_code, r.text)


def test_servers_are_still_up_after_everything(stack: dict[str, Any]) -> None:
    for p in (*stack["servers"].values(), stack["router"]):
        assert p.popen.poll() is None
        assert httpx.get(f"{p.url}/health").json() == {"status": "alive"}
