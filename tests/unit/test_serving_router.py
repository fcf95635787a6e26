"""The weighted router in-process, in front of fake upstream apps (test doubles live here only)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ml_platform.errors import DeploymentError
from ml_platform.serving import RequestRejected, RouterState, VariantSpec, create_router_app
from ml_platform.serving.router import parse_variants
from ml_platform.serving.router_state import UpstreamPool
from tests.unit.serving_support import asgi_client

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-for-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class FakeUpstream:
    """A model server stand-in: answers with its name; can hold requests until released."""

    def __init__(self, name: str, *, status: int = 200) -> None:
        self.name, self.status = name, status
        self.gate: asyncio.Event | None = None
        self.seen: list[str] = []
        self.feedback: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/predict", self.predict, methods=["POST"]),
                                     Route("/feedback", self.on_feedback, methods=["POST"])])

    async def predict(self, request: Request) -> Response:
        rid = request.headers["x-request-id"]
        self.seen.append(rid)
        if self.gate is not None:
            await self.gate.wait()
        return JSONResponse({"request_id": rid, "variant": self.name, "predictions": [1]},
                            status_code=self.status)

    async def on_feedback(self, request: Request) -> Response:
        self.feedback.append(await request.json())
        return JSONResponse({"ok": True})


class HostDispatch(httpx.AsyncBaseTransport):
    """Routes each upstream URL's host to an in-process app; unknown hosts refuse to connect."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self._apps = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"connection refused: {request.url.host}", request=request)
        return await transport.handle_async_request(request)


def _state(**weights: int) -> RouterState:
    return RouterState(tuple(VariantSpec(n, f"http://{n}:8000", w) for n, w in weights.items()))


@pytest.fixture
def upstreams() -> dict[str, FakeUpstream]:
    return {n: FakeUpstream(n) for n in ("stable", "canary", "blue", "green")}


def _router(tmp_path: Path, upstreams: dict[str, FakeUpstream], state: RouterState | None,
            seed: int = 1) -> Any:
    transport = HostDispatch({n: u.app for n, u in upstreams.items()})
    return create_router_app(tmp_path / "router.json", admin_token=TOKEN, initial=state,
                             rng=random.Random(seed), transport=transport)


@pytest.fixture
async def canary_router(tmp_path: Path, upstreams: dict[str, FakeUpstream]
                        ) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(_router(tmp_path, upstreams, _state(stable=90, canary=10))) as c:
        yield c


def test_weighted_choice_follows_the_weights() -> None:
    pool = UpstreamPool(_state(stable=90, canary=10), random.Random(42))
    counts = Counter(pool.choose().name for _ in range(20_000))
    assert 0.085 < counts["canary"] / 20_000 < 0.115


async def test_requests_split_by_weight_through_the_router(
    canary_router: httpx.AsyncClient, upstreams: dict[str, FakeUpstream]
) -> None:
    replies = [await canary_router.post("/predict", json={"records": []}) for _ in range(600)]
    by_variant = Counter(r.json()["variant"] for r in replies)
    assert sum(by_variant.values()) == 600 and set(by_variant) == {"stable", "canary"}
    assert 0.06 < by_variant["canary"] / 600 < 0.14
    assert all(r.headers["x-variant"] == r.json()["variant"] for r in replies)
    assert all(rid.startswith("canary.") for rid in upstreams["canary"].seen)


async def test_blue_green_switch(tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> None:
    async with asgi_client(_router(tmp_path, upstreams, _state(blue=100, green=0))) as c:
        assert {(await c.post("/predict", json={})).json()["variant"] for _ in range(20)} == {
            "blue"}
        r = await c.put("/admin/weights", json={"weights": {"blue": 0, "green": 100}},
                        headers=AUTH)
        assert r.status_code == 200 and r.json() == {"weights": {"blue": 0, "green": 100}}
        assert {(await c.post("/predict", json={})).json()["variant"] for _ in range(20)} == {
            "green"}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token-xxxxxxxx"},
                                     {"authorization": TOKEN}, {"authorization": "Basic abc"}])
async def test_admin_needs_the_bearer_token(canary_router: httpx.AsyncClient,
                                            headers: dict[str, str]) -> None:
    for method, path in [("GET", "/admin/weights"), ("GET", "/admin/state"),
                         ("PUT", "/admin/weights")]:
        r = await canary_router.request(method, path, headers=headers,
                                        json={"weights": {"canary": 100}})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (await canary_router.get("/admin/weights", headers=AUTH)).json() == {
        "weights": {"stable": 90, "canary": 10}}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"weights": {"nope": 5}}, 422, "weights.nope"),
    ({"weights": {"stable": 0, "canary": 0}}, 422, "weights"),
    ({"weights": {"stable": -1}}, 422, "weights.stable"),
    ({"weights": {"stable": 1.5}}, 422, "weights.stable"),
    ({"weights": [1]}, 422, "weights"),
    ({"weights": {}, "x": 1}, 422, "weights"),
    ([], 422, "weights"),
])
async def test_bad_weights_are_refused_and_change_nothing(
    canary_router: httpx.AsyncClient, body: Any, status: int, field: str
) -> None:
    r = await canary_router.put("/admin/weights", json=body, headers=AUTH)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert (await canary_router.get("/admin/weights", headers=AUTH)).json()["weights"] == {
        "stable": 90, "canary": 10}


async def test_admin_put_of_not_json_is_400(canary_router: httpx.AsyncClient) -> None:
    r = await canary_router.put("/admin/weights", content=b"{", headers=AUTH)
    assert r.status_code == 400


async def test_state_survives_a_router_restart(tmp_path: Path,
                                               upstreams: dict[str, FakeUpstream]) -> None:
    async with asgi_client(_router(tmp_path, upstreams, _state(stable=90, canary=10))) as c:
        r = await c.put("/admin/weights", json={"weights": {"canary": 50, "stable": 50}},
                        headers=AUTH)
        assert r.status_code == 200
    saved = json.loads((tmp_path / "router.json").read_text())
    assert saved["variants"]["canary"] == {"url": "http://canary:8000", "weight": 50}
    assert [p.name for p in tmp_path.iterdir()] == ["router.json"]  # no temp files left behind
    # restarted with a different initial state: the persisted one wins
    async with asgi_client(_router(tmp_path, upstreams, _state(stable=100))) as c:
        assert (await c.get("/admin/weights", headers=AUTH)).json()["weights"] == {
            "stable": 50, "canary": 50}


def test_a_corrupt_state_file_is_refused(tmp_path: Path, upstreams: dict[str, Any]) -> None:
    (tmp_path / "router.json").write_text("{not json")
    with pytest.raises(DeploymentError, match="invalid"):
        _router(tmp_path, upstreams, _state(stable=100))


def test_no_state_anywhere_is_refused(tmp_path: Path, upstreams: dict[str, Any]) -> None:
    with pytest.raises(DeploymentError, match="no router state"):
        _router(tmp_path, upstreams, None)


async def test_weight_change_and_removal_drop_no_in_flight_request(
    tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    blue = upstreams["blue"]
    blue.gate = asyncio.Event()
    async with asgi_client(_router(tmp_path, upstreams, _state(blue=100, green=0))) as c:
        in_flight = [asyncio.create_task(c.post("/predict", json={})) for _ in range(20)]
        while len(blue.seen) < 20:  # every request has reached the slow upstream
            await asyncio.sleep(0.001)
        r = await c.put("/admin/weights", json={"weights": {"blue": 0, "green": 100}},
                        headers=AUTH)
        assert r.status_code == 200
        new_state = {"variants": {"green": {"url": "http://green:8000", "weight": 100}}}
        assert (await c.put("/admin/state", json=new_state, headers=AUTH)).status_code == 200
        state = (await c.get("/admin/state", headers=AUTH)).json()
        assert list(state["variants"]) == ["green"]
        assert state["draining"] == [{"name": "blue", "url": "http://blue:8000", "inflight": 20}]
        assert (await c.post("/predict", json={})).json()["variant"] == "green"
        blue.gate.set()
        replies = await asyncio.gather(*in_flight)
        assert [r.status_code for r in replies] == [200] * 20
        assert {r.json()["variant"] for r in replies} == {"blue"}
        assert (await c.get("/admin/state", headers=AUTH)).json()["draining"] == []


async def test_feedback_goes_back_to_the_variant_that_served(
    canary_router: httpx.AsyncClient, upstreams: dict[str, FakeUpstream]
) -> None:
    ids = [(await canary_router.post("/predict", json={})).json()["request_id"]
           for _ in range(60)]
    await canary_router.put("/admin/weights", json={"weights": {"canary": 0}}, headers=AUTH)
    for rid in ids:
        r = await canary_router.post("/feedback", json={"request_id": rid, "label": 1})
        assert r.status_code == 200 and r.headers["x-variant"] == rid.split(".")[0]
    assert len(upstreams["canary"].feedback) == sum(i.startswith("canary.") for i in ids) > 0


@pytest.mark.parametrize(("body", "status"), [
    (b"", 400), (b"{", 400), (b'{"label": 1}', 422), (b'{"request_id": 3}', 422),
    (b'{"request_id": "nodot"}', 422), (b'{"request_id": "gone.abc"}', 404), (b"[]", 422),
])
async def test_malformed_feedback_is_refused_by_the_router(
    canary_router: httpx.AsyncClient, upstreams: dict[str, FakeUpstream], body: bytes,
    status: int
) -> None:
    r = await canary_router.post("/feedback", content=body)
    assert r.status_code == status and r.json()["field"] in (None, "request_id")
    assert not upstreams["stable"].feedback and not upstreams["canary"].feedback


@pytest.mark.parametrize("body", [b"", b"{", b"\xff", b"NaN"])
async def test_malformed_predict_is_400_from_the_router(
    canary_router: httpx.AsyncClient, upstreams: dict[str, FakeUpstream], body: bytes
) -> None:
    assert (await canary_router.post("/predict", content=body)).status_code == 400
    assert not upstreams["stable"].seen and not upstreams["canary"].seen


async def test_router_body_limit_is_413(canary_router: httpx.AsyncClient) -> None:
    r = await canary_router.post("/predict", content=b"[" + b"1," * 600_000 + b"1]")
    assert r.status_code == 413


async def test_upstream_failures_are_502_naming_the_variant(
    tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    upstreams["blue"].status = 500
    state = RouterState((VariantSpec("blue", "http://blue:8000", 1),
                         VariantSpec("gone", "http://nowhere:8000", 0)))
    async with asgi_client(_router(tmp_path, upstreams, state)) as c:
        r = await c.post("/predict", json={})
        assert r.status_code == 502 and "variant 'blue'" in r.json()["error"]
        assert r.json()["upstream_body"]
        await c.put("/admin/weights", json={"weights": {"blue": 0, "gone": 1}}, headers=AUTH)
        r = await c.post("/predict", json={})
        assert r.status_code == 502 and "ConnectError" in r.json()["error"]
        text = (await c.get("/metrics")).text
        assert 'router_errors_total{endpoint="predict",kind="upstream_5xx",variant="blue"} 1.0' \
            in text
        assert 'router_errors_total{endpoint="predict",kind="unreachable",variant="gone"} 1.0' \
            in text


async def test_router_metrics_are_per_variant(canary_router: httpx.AsyncClient) -> None:
    for _ in range(50):
        await canary_router.post("/predict", json={})
    text = (await canary_router.get("/metrics")).text
    for variant in ("stable", "canary"):
        assert f'router_requests_total{{endpoint="predict",status="200",variant="{variant}"}}' \
            in text
        assert f'router_request_latency_seconds_count{{endpoint="predict",variant="{variant}"}}' \
            in text
    assert 'router_weight{variant="canary"} 10.0' in text


def test_state_validation() -> None:
    with pytest.raises(RequestRejected, match="repeat"):
        RouterState((VariantSpec("a", "http://a", 1), VariantSpec("a", "http://b", 1)))
    with pytest.raises(RequestRejected, match="must match"):
        RouterState((VariantSpec("Bad.Name", "http://a", 1),))
    with pytest.raises(RequestRejected, match="url"):
        RouterState((VariantSpec("a", "ftp://a", 1),))


def test_command_line_variants() -> None:
    state = parse_variants(["stable=http://127.0.0.1:8001", "canary=http://127.0.0.1:8002"],
                           ["stable=95", "canary=5"])
    assert state.weights == {"stable": 95, "canary": 5}
    with pytest.raises(DeploymentError, match="same set"):
        parse_variants(["stable=http://127.0.0.1:8001"], [])


def test_short_admin_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="16 characters"):
        create_router_app(tmp_path / "s.json", admin_token="short", initial=_state(stable=1))
