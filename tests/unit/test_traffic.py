"""traffic.replay over an httpx MockTransport: pacing, bounds, feedback and per-variant counts."""

from __future__ import annotations

import json
import threading

import httpx
import pandas as pd
import pytest

from ml_platform.errors import DeploymentError
from ml_platform.traffic import UNREACHED, replay


class FakeRouter:
    """Every 4th prediction goes to a failing canary; feedback is accepted for known ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.predictions = 0
        self.feedback: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/feedback":
            with self.lock:
                self.feedback.append(body)
            return httpx.Response(200, json={"correct": True})
        assert len(body["records"]) == 1 and set(body["records"][0]) == {"x", "c"}
        with self.lock:
            self.predictions += 1
            n = self.predictions
        if n % 4 == 0:
            return httpx.Response(502, json={"error": "boom"}, headers={"x-variant": "canary"})
        return httpx.Response(200, json={"request_id": f"stable.{n:032x}", "predictions": [1]},
                              headers={"x-variant": "stable"})


class FakeTime:
    def __init__(self) -> None:
        self.now, self.lock = 0.0, threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now = max(self.now, self.now + seconds)


ROWS = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
LABELS = pd.Series([1, 0, 1])


def test_counts_by_variant_and_sends_labels_for_answered_predictions() -> None:
    router, t = FakeRouter(), FakeTime()
    stats = replay("http://router", ROWS, LABELS, rate_per_s=100, max_requests=40,
                   max_seconds=60, concurrency=3,
                   client=httpx.Client(transport=httpx.MockTransport(router)),
                   clock=t.clock, sleeper=t.sleep)
    assert stats.sent == 40 and router.predictions == 40 and stats.stopped_by == "requests"
    assert stats.by_variant == {"stable": {200: 30}, "canary": {502: 10}}
    assert stats.ok == 30 and stats.errors == 10 and stats.variant_errors() == {"stable": 0,
                                                                                 "canary": 10}
    assert stats.feedback_sent == stats.feedback_ok == 30 == len(router.feedback)
    assert all(f["label"] in (0, 1) and str(f["request_id"]).startswith("stable.")
               for f in router.feedback)


def test_stops_at_max_seconds_at_the_given_rate() -> None:
    router, t = FakeRouter(), FakeTime()
    stats = replay("http://router", ROWS, None, rate_per_s=10, max_requests=1000,
                   max_seconds=2.0, concurrency=1,
                   client=httpx.Client(transport=httpx.MockTransport(router)),
                   clock=t.clock, sleeper=t.sleep)
    assert stats.sent == 20 and stats.stopped_by == "seconds"  # 10/s for 2 s
    assert stats.feedback_sent == 0 and router.feedback == []


def test_unreachable_router_is_counted_not_raised() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    stats = replay("http://router", ROWS, LABELS, rate_per_s=1000, max_requests=5,
                   max_seconds=5, client=httpx.Client(transport=httpx.MockTransport(down)))
    assert stats.by_variant == {UNREACHED: {0: 5}} and stats.transport_errors == 5
    assert stats.ok == 0 and stats.first_errors and "refused" in stats.first_errors[0]


@pytest.mark.parametrize("kwargs", [{"rate_per_s": 0}, {"max_requests": 0},
                                    {"max_seconds": 0}, {"concurrency": 0}])
def test_unbounded_or_empty_replays_are_refused(kwargs: dict[str, float]) -> None:
    args = {"rate_per_s": 1.0, "max_requests": 1, "max_seconds": 1.0, "concurrency": 1, **kwargs}
    with pytest.raises(DeploymentError):
        replay("http://router", ROWS, None, **args)  # type: ignore[arg-type]
    with pytest.raises(DeploymentError, match="at least one row"):
        replay("http://router", ROWS.head(0), None, rate_per_s=1, max_requests=1, max_seconds=1)
