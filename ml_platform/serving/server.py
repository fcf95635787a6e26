"""The model server: one MLflow model behind /predict, /feedback, /health, /ready, /metrics, /stats.

    python -m ml_platform.serving.server --model-dir DIR_OR_URI --port 8001 --variant stable \
        [--expected-digest SHA256] [--sample-log FILE] [--sample-rate 0.05]

Plain Starlette (no FastAPI validation layer): the request contract is checked by
``schema.parse_payload``, which is both faster and names the offending field.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_platform.serving._http import (
    REQUEST_ID,
    decode_json,
    error_response,
    json_response,
    read_body,
)
from ml_platform.serving.batching import MicroBatcher
from ml_platform.serving.model import LoadedModel, load_model
from ml_platform.serving.schema import InputSchema, RequestRejected, parse_payload
from ml_platform.serving.telemetry import FeedbackBook, SampleLog, ServerMetrics

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = 1_000_000
    max_rows: int = 1_000
    sample_rate: float = 0.05
    sample_log_max_bytes: int = 100_000_000
    feedback_capacity: int = 100_000


class _Server:
    """Request handlers over one loaded model; the Starlette app is a thin routing table."""

    def __init__(self, model: LoadedModel, variant: str, limits: ServerLimits,
                 sample_log: SampleLog) -> None:
        self.model, self.variant, self.limits = model, variant, limits
        self.metrics = ServerMetrics(variant, model.version)
        self.batcher = MicroBatcher(model.predict, model.schema)
        self.feedback_book = FeedbackBook(limits.feedback_capacity)
        self.sample_log = sample_log
        self.predictions = 0

    def observed(self, endpoint: str, handler: Handler) -> Handler:
        """Count, time and turn errors into JSON bodies: bad input is 4xx, never a 5xx."""
        requests, errors = self.metrics.requests, self.metrics.errors
        latency = self.metrics.latency.labels(endpoint)

        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response = await handler(request)
            except RequestRejected as e:
                errors.labels(endpoint, "too_large" if e.status == 413 else "bad_request").inc()
                response = error_response(e)
            except Exception:  # the boundary: log it, answer JSON, keep serving
                log.exception("%s failed", endpoint)
                errors.labels(endpoint, "internal").inc()
                response = json_response({"error": "internal server error", "field": None}, 500)
            latency.observe(time.perf_counter() - start)
            requests.labels(endpoint, str(response.status_code)).inc()
            return response

        return wrapped

    async def predict(self, request: Request) -> Response:
        payload = decode_json(await read_body(request, self.limits.max_body_bytes))
        columns = parse_payload(payload, self.model.schema, self.limits.max_rows)
        rows = len(columns[self.model.schema.columns[0].name])
        try:
            labels, scores = await self.batcher.predict(columns, rows)
        except ValueError as e:  # input passed the schema but the model refused a value in it
            raise RequestRejected(f"the model rejected the input: {e}") from e
        request_id = _request_id(request)
        self._record(request_id, columns, labels, scores)
        return json_response({
            "request_id": request_id, "predictions": labels, "scores": scores,
            "model_version": self.model.version, "variant": self.variant,
        })

    def _record(self, request_id: str, columns: dict[str, list[Any]], labels: list[Any],
                scores: list[float] | None) -> None:
        self.predictions += len(labels)
        self.feedback_book.remember(request_id, labels)
        if scores is not None:
            for score in scores:
                self.metrics.scores.observe(score)
        if self.sample_log.wants():
            record = {"ts": time.time(), "request_id": request_id, "variant": self.variant,
                      "model_version": self.model.version, "inputs": columns,
                      "predictions": labels, "scores": scores}
            if not self.sample_log.write(record):
                self.metrics.sample_dropped.inc()

    async def feedback(self, request: Request) -> Response:
        payload = decode_json(await read_body(request, 10_000))
        request_id, label, row = _parse_feedback(payload)
        result = self.feedback_book.record(request_id, label, row)
        self.metrics.feedback.inc()
        self.metrics.correct.inc(int(result.correct))
        accuracy = self.feedback_book.accuracy
        self.metrics.accuracy.set(accuracy if accuracy is not None else 0.0)
        if self.sample_log.wants():
            self.sample_log.write({"ts": time.time(), "request_id": request_id, "row": result.row,
                                   "label": label, "variant": self.variant, "type": "feedback"})
        return json_response({"request_id": request_id, "row": result.row,
                              "correct": result.correct, "live_accuracy": accuracy})

    async def stats(self, request: Request) -> Response:
        book = self.feedback_book
        return json_response({
            "variant": self.variant, "model_version": self.model.version,
            "digest": self.model.digest, "flavor": self.model.flavor,
            "predictions": self.predictions, "feedback": book.total,
            "correct": book.correct, "live_accuracy": book.accuracy,
        })

    async def health(self, request: Request) -> Response:
        return json_response({"status": "alive"})

    async def ready(self, request: Request) -> Response:
        # the model is loaded (and its digest checked) before the app exists
        return json_response({"status": "ready", "model_version": self.model.version})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def close(self) -> None:
        self.batcher.close()
        self.sample_log.close()


def _request_id(request: Request) -> str:
    # the router mints ids that say which variant served them; a direct client gets a fresh one
    given = request.headers.get("x-request-id")
    return given if given and REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _parse_feedback(payload: Any) -> tuple[str, int, int | None]:
    if not isinstance(payload, dict):
        raise RequestRejected('the body must be {"request_id": "...", "label": 0 or 1}')
    unknown = sorted(str(k) for k in set(payload) - {"request_id", "label", "row"})
    if unknown:
        raise RequestRejected(f"unknown field '{unknown[0]}'", field=unknown[0])
    request_id, label, row = payload.get("request_id"), payload.get("label"), payload.get("row")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise RequestRejected("'request_id' must be the id a prediction returned",
                              field="request_id")
    if type(label) is not int or label not in (0, 1):
        raise RequestRejected("'label' must be 0 or 1", field="label")
    if row is not None and type(row) is not int:
        raise RequestRejected("'row' must be an integer", field="row")
    return request_id, label, row


def create_app(
    model_dir_or_uri: str | Path,
    *,
    expected_digest: str | None,
    variant: str,
    input_schema: InputSchema | None = None,
    sample_log_path: str | Path | None = None,
    max_body_bytes: int = 1_000_000,
    sample_rate: float = 0.05,
    max_rows: int = 1_000,
    model_version: str | None = None,
    rng: random.Random | None = None,
) -> Starlette:
    """Verify the model's digest, load it and return the ASGI app (DeploymentError if refused).

    ``expected_digest=None`` skips the check (local experiments only; deployers always pass it).
    ``input_schema`` overrides the model signature; ``rng`` drives log sampling in tests.
    """
    model = load_model(model_dir_or_uri, expected_digest=expected_digest,
                       input_schema=input_schema, model_version=model_version)
    limits = ServerLimits(max_body_bytes=max_body_bytes, max_rows=max_rows,
                          sample_rate=sample_rate)
    sample_log = SampleLog(Path(sample_log_path) if sample_log_path else None, rate=sample_rate,
                           max_bytes=limits.sample_log_max_bytes, rng=rng)
    server = _Server(model, variant, limits, sample_log)
    return _build_app(server)


def _build_app(server: _Server) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        server.close()

    o = server.observed
    routes = [
        Route("/predict", o("predict", server.predict), methods=["POST"]),
        Route("/feedback", o("feedback", server.feedback), methods=["POST"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/ready", server.ready, methods=["GET"]),
        Route("/metrics", server.metrics_endpoint, methods=["GET"]),
        Route("/stats", server.stats, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ml_platform.serving.server",
                                description="Serve one MLflow model over HTTP.")
    p.add_argument("--model-dir", required=True, help="model directory or models:/ URI")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--expected-digest", default=None)
    p.add_argument("--model-version", default=None)
    p.add_argument("--sample-log", default=None)
    p.add_argument("--sample-rate", type=float, default=0.05)
    p.add_argument("--max-body-bytes", type=int, default=1_000_000)
    p.add_argument("--max-rows", type=int, default=1_000)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = create_app(
        args.model_dir, expected_digest=args.expected_digest, variant=args.variant,
        sample_log_path=args.sample_log, sample_rate=args.sample_rate,
        max_body_bytes=args.max_body_bytes, max_rows=args.max_rows,
        model_version=args.model_version,
    )
    # one worker, uvloop + httptools when installed, no access log: per-request INFO logging
    # costs more than the model does at this size
    uvicorn.run(app, host=args.host, port=args.port, workers=1, loop="auto", http="auto",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
