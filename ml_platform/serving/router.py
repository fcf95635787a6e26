"""The weighted router in front of model-server variants (stable/canary, blue/green).

    ML_PLATFORM_ROUTER_TOKEN=... python -m ml_platform.serving.router --port 8000 \
        --state-file router.json --variant stable=http://127.0.0.1:8001 --weight stable=100

Admin API (``Authorization: Bearer <token>``): ``GET|PUT /admin/weights``,
``GET|PUT /admin/state``. A state change is persisted before it takes effect, and requests
already in flight finish against the upstream they started on.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_platform.errors import DeploymentError
from ml_platform.serving._http import decode_json, error_response, json_response, read_body
from ml_platform.serving.router_state import (
    RouterState,
    StateStore,
    Upstream,
    UpstreamPool,
    VariantSpec,
)
from ml_platform.serving.schema import RequestRejected
from ml_platform.serving.telemetry import LATENCY_BUCKETS
from ml_platform.serving.transport import PooledHTTP11Transport

TOKEN_ENV = "ML_PLATFORM_ROUTER_TOKEN"


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("router_requests", "Requests by variant, endpoint and status",
                                ["variant", "endpoint", "status"], registry=r)
        self.errors = Counter("router_errors", "Failed requests by variant and kind",
                              ["variant", "endpoint", "kind"], registry=r)
        self.latency = Histogram("router_request_latency_seconds", "Latency through the router",
                                 ["variant", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge("router_inflight", "Requests in flight per variant", ["variant"],
                              registry=r)
        self.weight = Gauge("router_weight", "Configured weight per variant", ["variant"],
                            registry=r)

    def set_weights(self, state: RouterState) -> None:
        self.weight.clear()
        for v in state.variants:
            self.weight.labels(v.name).set(v.weight)


class _Router:
    def __init__(self, pool: UpstreamPool, store: StateStore, token: str,
                 client: httpx.AsyncClient, max_body_bytes: int) -> None:
        self.pool, self.store, self.client = pool, store, client
        self._token = token.encode()
        self.max_body_bytes = max_body_bytes
        self.metrics = RouterMetrics()
        self.metrics.set_weights(pool.state)

    async def predict(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            body = await read_body(request, self.max_body_bytes)
            decode_json(body)  # malformed JSON is the client's fault: say so here, not as a 502
        except RequestRejected as e:
            return self._rejected("predict", e)
        upstream = self.pool.choose()
        # the id names the variant, so /feedback finds it again without any router memory
        request_id = f"{upstream.name}.{uuid.uuid4().hex}"
        return await self._forward("predict", upstream, body, request_id, start)

    async def feedback(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            body = await read_body(request, 10_000)
            upstream = self._feedback_upstream(decode_json(body))
        except RequestRejected as e:
            return self._rejected("feedback", e)
        return await self._forward("feedback", upstream, body, None, start)

    def _feedback_upstream(self, payload: Any) -> Upstream:
        request_id = payload.get("request_id") if isinstance(payload, dict) else None
        if not isinstance(request_id, str) or "." not in request_id:
            raise RequestRejected("'request_id' must be an id this router returned",
                                  field="request_id")
        upstream = self.pool.find(request_id.split(".", 1)[0])
        if upstream is None:
            raise RequestRejected(f"the variant that served '{request_id}' is gone", status=404,
                                  field="request_id")
        return upstream

    async def _forward(self, endpoint: str, upstream: Upstream, body: bytes,
                       request_id: str | None, start: float) -> Response:
        headers = {"content-type": "application/json"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        gauge = self.metrics.inflight.labels(upstream.name)
        self.pool.acquire(upstream)
        gauge.inc()
        try:
            reply = await self.client.post(f"{upstream.url}/{endpoint}", content=body,
                                           headers=headers)
            response = self._relay(endpoint, upstream, reply)
        except httpx.HTTPError as e:
            self.metrics.errors.labels(upstream.name, endpoint, "unreachable").inc()
            response = _bad_gateway(upstream, f"{type(e).__name__}: {e}", None)
        finally:
            self.pool.release(upstream)
            gauge.dec()
        self._count(upstream.name, endpoint, response.status_code, start)
        return response

    def _relay(self, endpoint: str, upstream: Upstream, reply: httpx.Response) -> Response:
        if reply.status_code >= 500:
            self.metrics.errors.labels(upstream.name, endpoint, "upstream_5xx").inc()
            return _bad_gateway(upstream, f"answered {reply.status_code}", reply.text[:500])
        if reply.status_code >= 400:
            self.metrics.errors.labels(upstream.name, endpoint, "bad_request").inc()
        return Response(reply.content, status_code=reply.status_code,
                        media_type="application/json", headers={"x-variant": upstream.name})

    def _rejected(self, endpoint: str, err: RequestRejected) -> Response:
        self.metrics.errors.labels("none", endpoint, "bad_request").inc()
        self.metrics.requests.labels("none", endpoint, str(err.status)).inc()
        return error_response(err)

    def _count(self, variant: str, endpoint: str, status: int, start: float) -> None:
        self.metrics.latency.labels(variant, endpoint).observe(time.perf_counter() - start)
        self.metrics.requests.labels(variant, endpoint, str(status)).inc()

    # --- admin -------------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self._token)

    async def admin(self, request: Request) -> Response:
        if not self.authorized(request):
            return json_response({"error": "admin API needs 'Authorization: Bearer <token>'",
                                  "field": "authorization"}, 401,
                                 headers={"www-authenticate": "Bearer"})
        try:
            return await self._admin(request)
        except RequestRejected as e:
            return error_response(e)

    async def _admin(self, request: Request) -> Response:
        what = request.path_params["what"]
        if request.method == "GET":
            return json_response(self._weights() if what == "weights" else self._state())
        payload = decode_json(await read_body(request, 100_000))
        if what == "weights":
            weights = payload.get("weights") if isinstance(payload, dict) else None
            if not isinstance(weights, dict) or set(payload) != {"weights"}:
                raise RequestRejected('expected {"weights": {variant: int}}', field="weights")
            new = self.pool.state.with_weights(weights)
        else:
            new = RouterState.from_json(payload)
        self.store.save(new)  # persisted first: a crash right after keeps what was acknowledged
        self.pool.apply(new)
        self.metrics.set_weights(new)
        return json_response(self._weights() if what == "weights" else self._state())

    def _weights(self) -> dict[str, Any]:
        return {"weights": self.pool.state.weights}

    def _state(self) -> dict[str, Any]:
        active = self.pool.state.to_json()["variants"]
        for name, upstream in self.pool.active.items():
            active[name]["inflight"] = upstream.inflight
        draining = [{"name": u.name, "url": u.url, "inflight": u.inflight}
                    for u in self.pool.draining]
        return {"variants": active, "draining": draining, "state_file": str(self.store.path)}

    # --- probes ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return json_response({"status": "alive"})

    async def ready(self, request: Request) -> Response:
        return json_response({"status": "ready", "weights": self.pool.state.weights})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _bad_gateway(upstream: Upstream, what: str, upstream_body: str | None) -> Response:
    return json_response({
        "error": f"upstream of variant '{upstream.name}' at {upstream.url} failed: {what}",
        "field": None, "variant": upstream.name, "upstream_body": upstream_body,
    }, 502, headers={"x-variant": upstream.name})


def create_router_app(
    state_file: str | Path,
    *,
    admin_token: str,
    initial: RouterState | None = None,
    rng: random.Random | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    upstream_timeout: float = 10.0,
    max_body_bytes: int = 1_000_000,
) -> Starlette:
    """The router app. A persisted state file wins over ``initial`` so a restart keeps weights.

    ``rng`` makes the weighted choice reproducible; ``transport`` is the httpx seam tests use
    to put in-process upstreams behind the router (default: PooledHTTP11Transport).
    """
    if len(admin_token) < 16:
        raise DeploymentError("the router admin token must be at least 16 characters")
    store = StateStore(Path(state_file))
    state = store.load()
    if state is None:
        if initial is None:
            raise DeploymentError(f"no router state at '{store.path}' and no initial state given")
        store.save(initial)
        state = initial
    client = httpx.AsyncClient(
        transport=transport or PooledHTTP11Transport(max_idle_per_host=64),
        timeout=httpx.Timeout(upstream_timeout, connect=2.0),
    )
    router = _Router(UpstreamPool(state, rng), store, admin_token, client, max_body_bytes)
    return _build_app(router)


def _build_app(router: _Router) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await router.client.aclose()

    routes = [
        Route("/predict", router.predict, methods=["POST"]),
        Route("/feedback", router.feedback, methods=["POST"]),
        Route("/admin/{what:str}", router.admin, methods=["GET", "PUT"]),
        Route("/health", router.health, methods=["GET"]),
        Route("/ready", router.ready, methods=["GET"]),
        Route("/metrics", router.metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.router = router
    return app


def parse_variants(variants: Sequence[str], weights: Sequence[str]) -> RouterState:
    """``NAME=URL`` and ``NAME=WEIGHT`` pairs from the command line; every variant needs both."""
    urls = dict(_pair(v, "--variant") for v in variants)
    given = dict(_pair(w, "--weight") for w in weights)
    if set(urls) != set(given):
        raise DeploymentError(f"--variant names {sorted(urls)} and --weight names "
                              f"{sorted(given)} must be the same set")
    try:
        return RouterState(tuple(VariantSpec(n, u, int(given[n])) for n, u in urls.items()))
    except ValueError as e:
        raise DeploymentError(f"--weight values must be integers: {e}") from e


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise DeploymentError(f"{flag} expects NAME=VALUE, got '{text}'")
    return name, value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ml_platform.serving.router",
                                description="Weighted router in front of model servers.")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--state-file", required=True)
    p.add_argument("--variant", action="append", default=[], help="NAME=URL (initial state)")
    p.add_argument("--weight", action="append", default=[], help="NAME=INT (initial state)")
    p.add_argument("--admin-token-file", default=None,
                   help=f"file holding the admin token (default: ${TOKEN_ENV})")
    p.add_argument("--upstream-timeout", type=float, default=10.0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = _parse_args(argv)
    token = (Path(args.admin_token_file).read_text(encoding="utf-8").strip()
             if args.admin_token_file else os.environ.get(TOKEN_ENV, ""))
    initial = parse_variants(args.variant, args.weight) if args.variant else None
    app = create_router_app(args.state_file, admin_token=token, initial=initial,
                            upstream_timeout=args.upstream_timeout)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, loop="auto", http="auto",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
