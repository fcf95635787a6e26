"""Replay rows as live traffic against a router (or a model server), bounded in count and time.

Each row is one ``POST /predict``; when a label is given it is sent back with the returned
``request_id`` to ``POST /feedback``, as a client whose outcomes become known would. Requests
are paced at ``rate_per_s`` by ``concurrency`` workers and stop at ``max_requests`` or
``max_seconds``, whichever comes first; answers are counted per variant and status.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from ml_platform._poll import Clock, Sleeper
from ml_platform.errors import DeploymentError

UNREACHED = "unreached"  # the variant of a request that got no HTTP answer at all


@dataclass(frozen=True)
class ReplayStats:
    sent: int
    ok: int
    by_variant: dict[str, dict[int, int]]  # variant -> HTTP status -> count (0: no answer)
    feedback_sent: int
    feedback_ok: int
    seconds: float
    p50_ms: float
    p95_ms: float
    stopped_by: str  # "requests", "seconds" or "rows"
    transport_errors: int = 0
    first_errors: tuple[str, ...] = field(default_factory=tuple)  # up to 5, for the report

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    def variant_errors(self) -> dict[str, int]:
        return {v: sum(n for s, n in by.items() if s != 200) for v, by in self.by_variant.items()}

    def summary(self) -> str:
        per = ", ".join(f"{v}: {dict(sorted(s.items()))}" for v, s in sorted(self.by_variant.items()))
        return (f"{self.sent} request(s) in {self.seconds:.1f} s, {self.ok} ok, "
                f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, feedback "
                f"{self.feedback_ok}/{self.feedback_sent}; by variant {per}; stopped by "
                f"{self.stopped_by}")


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_variant: dict[str, Counter[int]] = {}
        self.latencies: list[float] = []
        self.feedback_sent = self.feedback_ok = self.transport_errors = 0
        self.first_errors: list[str] = []

    def answer(self, variant: str, status: int, ms: float, error: str | None) -> None:
        with self.lock:
            self.by_variant.setdefault(variant, Counter())[status] += 1
            self.latencies.append(ms)
            self.transport_errors += status == 0
            if error is not None and len(self.first_errors) < 5:
                self.first_errors.append(error)

    def feedback(self, ok: bool) -> None:
        with self.lock:
            self.feedback_sent += 1
            self.feedback_ok += ok


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(rows.to_json(orient="records"))
    return out


def replay(
    router_url: str,
    rows: pd.DataFrame,
    labels: pd.Series | None,
    *,
    rate_per_s: float,
    max_requests: int,
    max_seconds: float,
    concurrency: int = 4,
    feedback: bool = True,
    client: httpx.Client | None = None,
    clock: Clock = time.monotonic,
    sleeper: Sleeper = time.sleep,
) -> ReplayStats:
    """Send rows (cycling through them) to ``router_url``/predict; see the module docstring.

    ``labels`` must be 0/1 aligned with ``rows``; ``client`` is the transport seam for tests.
    """
    if rows.empty:
        raise DeploymentError("replay needs at least one row")
    if rate_per_s <= 0 or max_requests < 1 or max_seconds <= 0 or not 1 <= concurrency <= 64:
        raise DeploymentError(
            f"replay bounds must be positive (rate {rate_per_s}, requests {max_requests}, "
            f"seconds {max_seconds}) and concurrency within 1..64 (got {concurrency})")
    if labels is not None and len(labels) != len(rows):
        raise DeploymentError(f"{len(labels)} labels for {len(rows)} rows")
    records = _records(rows)
    label_list = None if labels is None else [int(v) for v in labels.tolist()]
    http = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0),
                                  limits=httpx.Limits(max_connections=concurrency))
    base = router_url.rstrip("/")
    tally, start = _Tally(), clock()
    deadline = start + max_seconds
    next_index, index_lock = [0], threading.Lock()

    def take() -> int | None:
        with index_lock:
            i = next_index[0]
            if i >= max_requests:
                return None
            due = start + i / rate_per_s
            if due >= deadline:
                return None
            next_index[0] += 1
        wait = due - clock()
        if wait > 0:
            sleeper(wait)
        return i

    def worker() -> None:
        while (i := take()) is not None:
            row = i % len(records)
            label = None if label_list is None or not feedback else label_list[row]
            _one(http, base, records[row], label, tally)

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for f in [pool.submit(worker) for _ in range(concurrency)]:
                f.result()
    finally:
        if client is None:
            http.close()
    sent = next_index[0]
    stopped = "requests" if sent >= max_requests else "seconds"
    return ReplayStats(
        sent=sent, ok=sum(c[200] for c in tally.by_variant.values()),
        by_variant={v: dict(c) for v, c in tally.by_variant.items()},
        feedback_sent=tally.feedback_sent, feedback_ok=tally.feedback_ok,
        seconds=clock() - start, p50_ms=_quantile(tally.latencies, 0.5),
        p95_ms=_quantile(tally.latencies, 0.95), stopped_by=stopped,
        transport_errors=tally.transport_errors, first_errors=tuple(tally.first_errors))


def _one(http: httpx.Client, base: str, record: dict[str, Any], label: int | None,
         tally: _Tally, timer: Callable[[], float] = time.perf_counter) -> None:
    began = timer()
    try:
        reply = http.post(f"{base}/predict", json={"records": [record]})
    except httpx.HTTPError as e:
        tally.answer(UNREACHED, 0, 1000 * (timer() - began), f"{type(e).__name__}: {e}")
        return
    ms = 1000 * (timer() - began)
    body = _json(reply)
    variant = reply.headers.get("x-variant") or str(body.get("variant") or "direct")
    error = None if reply.status_code == 200 else f"{reply.status_code}: {reply.text[:200]}"
    tally.answer(variant, reply.status_code, ms, error)
    request_id = body.get("request_id")
    if label is None or reply.status_code != 200 or not isinstance(request_id, str):
        return
    try:
        fb = http.post(f"{base}/feedback", json={"request_id": request_id, "label": label})
        tally.feedback(fb.status_code == 200)
    except httpx.HTTPError:
        tally.feedback(False)


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
