"""Local-process deployer, router traffic controller and router metrics source, for real:
model servers and the router run as processes on loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml_platform._poll import free_port, wait_for_http
from ml_platform.deploy import LocalProcessDeployer, RouterMetricsSource, RouterTrafficController
from ml_platform.errors import DeploymentError
from tests.integration.model_support import Registered, register_churn_model

pytestmark = pytest.mark.integration
TOKEN = "deployers-admin-token-0123456789"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    return register_churn_model(tmp_path_factory.mktemp("deploy") / "home")


@pytest.fixture
def deployer(model: Registered, tmp_path: Path) -> Iterator[LocalProcessDeployer]:
    d = LocalProcessDeployer(tmp_path / "deployments", project="churn", sample_rate=0.0)
    yield d
    for endpoint in d.endpoints():
        d.stop(endpoint.variant)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_local_process_deployer_start_health_restart_stop(model, deployer, tmp_path) -> None:
    endpoint = deployer.deploy("canary", model.ref)
    assert endpoint.url.startswith("http://127.0.0.1:") and endpoint.backend == "process"
    assert (endpoint.model_version, endpoint.model_digest) == ("1", model.ref.digest)
    reply = httpx.post(f"{endpoint.url}/predict", json={"records": model.sample[:3]}, timeout=10)
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 3
    assert reply.json()["model_version"] == "1" and reply.json()["variant"] == "canary"
    pid = deployer.store.load("canary").pid

    # a restarted controller finds the running server from the records in the platform home
    again = LocalProcessDeployer(tmp_path / "deployments", project="churn")
    health = again.health("canary")
    assert health.running and health.ready and health.endpoint == endpoint
    assert again.deploy("canary", model.ref) == endpoint  # idempotent: same server, same pid
    assert again.store.load("canary").pid == pid

    again.stop("canary")
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid)
    assert again.health("canary").detail == "not deployed" and again.endpoints() == []
    again.stop("canary")  # stopping twice is fine


def test_a_server_that_cannot_start_is_reported_with_its_log(model, deployer) -> None:
    forged = type(model.ref)(**{**model.ref.__dict__, "digest": "0" * 64})
    with pytest.raises(DeploymentError, match="was not ready") as err:
        deployer.deploy("canary", forged)
    assert "refusing to serve a model" in str(err.value)  # the server's own digest refusal
    assert deployer.endpoint("canary") is None


class Router:
    def __init__(self, tmp: Path, stable_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (tmp / "token").write_text(TOKEN)
        self._log = (tmp / "router.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ml_platform.serving.router", "--port", str(self.port),
             "--state-file", str(tmp / "router.json"), "--admin-token-file", str(tmp / "token"),
             "--variant", f"stable={stable_url}", "--weight", "stable=100"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        assert wait_for_http(f"{self.url}/ready", timeout=30).ok, (tmp / "router.log").read_text()

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def stack(model, deployer, tmp_path) -> Iterator[tuple[Router, LocalProcessDeployer]]:
    stable = deployer.deploy("stable", model.ref)
    router = Router(tmp_path, stable.url)
    try:
        yield router, deployer
    finally:
        router.stop()


def _predict(router: Router, model: Registered, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=router.url, timeout=10) as c:
        for i in range(n):
            reply = c.post("/predict", json={"records": [model.sample[i % len(model.sample)]]})
            assert reply.status_code == 200, reply.text
            seen[reply.headers["x-variant"]] += 1
    return seen


def test_traffic_controller_sets_weights_the_router_applies(model, stack) -> None:
    router, deployer = stack
    traffic = RouterTrafficController(router.url, TOKEN, deployer=deployer)
    assert traffic.current_weights() == (100, 0)
    with pytest.raises(DeploymentError, match="attach_canary"):
        traffic.set_weights(90, 10)
    traffic.attach_canary(deployer.deploy("canary", model.ref).url)
    traffic.set_weights(70, 30)
    assert traffic.current_weights() == (70, 30)
    seen = _predict(router, model, 200)
    assert 35 <= seen["canary"] <= 85 and seen["stable"] + seen["canary"] == 200

    traffic.set_weights(0, 100)
    assert _predict(router, model, 20) == Counter({"canary": 20})
    with pytest.raises(DeploymentError, match="rejected the admin token"):
        RouterTrafficController(router.url, "wrong-token-0123456789").current_weights()


def test_promote_and_rollback_are_idempotent_and_tidy_the_servers(model, stack) -> None:
    router, deployer = stack
    traffic = RouterTrafficController(router.url, TOKEN, deployer=deployer)
    old_stable = deployer.endpoint("stable")
    canary = deployer.deploy("canary", model.ref)
    traffic.attach_canary(canary.url)
    traffic.rollback()
    traffic.rollback()
    assert traffic.current_weights() == (100, 0) and deployer.endpoint("canary") is None
    assert deployer.health("stable").ready

    canary = deployer.deploy("canary", model.ref)
    traffic.attach_canary(canary.url)
    traffic.set_weights(0, 100)
    traffic.promote("1")
    traffic.promote("1")  # repeated by a reconciler that crashed before recording it
    state = httpx.get(f"{router.url}/admin/state", headers={"authorization": f"Bearer {TOKEN}"})
    assert {n: v["url"] for n, v in state.json()["variants"].items()} == {"stable": canary.url}
    assert deployer.endpoint("stable").url == canary.url and deployer.endpoint("canary") is None
    assert old_stable is not None and old_stable.url != canary.url
    assert _predict(router, model, 5) == Counter({"stable": 5})


def test_metrics_source_reads_real_router_and_server_metrics(model, stack) -> None:
    router, deployer = stack
    traffic = RouterTrafficController(router.url, TOKEN)
    traffic.attach_canary(deployer.deploy("canary", model.ref).url)
    source = RouterMetricsSource(router.url, TOKEN)
    source.mark()
    traffic.set_weights(50, 50)
    seen = _predict(router, model, 60)
    with httpx.Client(base_url=router.url, timeout=10) as c:  # labels for a few predictions
        for record in model.sample[:6]:
            body = c.post("/predict", json={"records": [record]}).json()
            assert c.post("/feedback", json={"request_id": body["request_id"],
                                             "label": body["predictions"][0]}).status_code == 200
    stable, canary = source.variant_metrics()
    assert stable.requests + canary.requests == 66
    assert stable.requests >= seen["stable"] and canary.requests >= seen["canary"]
    assert stable.errors == canary.errors == 0
    assert 0 < stable.p95_latency_ms < 2500 and 0 < canary.p95_latency_ms < 2500
    assert 0 < stable.mean_score < 1 and 0 < canary.mean_score < 1
    assert stable.feedback_count + canary.feedback_count == 6
    accuracies = [m.live_accuracy for m in (stable, canary) if m.feedback_count]
    assert accuracies and all(a == 1.0 for a in accuracies)

    source.mark()  # a new window starts empty
    stable, canary = source.variant_metrics()
    assert (stable.requests, canary.requests, stable.feedback_count) == (0, 0, 0)
