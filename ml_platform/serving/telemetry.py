"""What a model server records: Prometheus metrics, a sampled input log, and live accuracy."""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ml_platform.serving.schema import RequestRejected

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))


class ServerMetrics:
    """Metrics in a registry of their own, so several apps can live in one process (tests)."""

    def __init__(self, variant: str, model_version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("model_requests", "Requests by endpoint and HTTP status",
                                ["endpoint", "status"], registry=r)
        self.errors = Counter("model_errors", "Failed requests by endpoint and kind",
                              ["endpoint", "kind"], registry=r)
        self.latency = Histogram("model_request_latency_seconds", "Request latency",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.scores = Histogram("model_prediction_score", "Predicted P(positive)",
                                buckets=SCORE_BUCKETS, registry=r)
        self.feedback = Counter("model_feedback", "Labels received for served predictions",
                                registry=r)
        self.correct = Counter("model_feedback_correct", "Labels that matched the prediction",
                               registry=r)
        self.accuracy = Gauge("model_live_accuracy", "Correct / labelled predictions so far",
                              registry=r)
        self.sample_dropped = Counter("model_sample_log_dropped",
                                      "Sampled records not written: the log is full", registry=r)
        info = Gauge("model_info", "The served model", ["variant", "model_version"], registry=r)
        info.labels(variant, model_version).set(1)


class SampleLog:
    """Appends a sampled fraction of predictions as JSON lines, up to ``max_bytes`` in total.

    Bounded rather than rotated: drift monitoring needs a sample, not every request, and a full
    disk must never take the model server down.
    """

    def __init__(self, path: Path | None, *, rate: float, max_bytes: int,
                 rng: random.Random | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate must be within [0, 1], got {rate}")
        self._path, self._rate, self._max = path, rate, max_bytes
        self._rng = rng or random.Random()
        self._fh: TextIO | None = None
        self._written = path.stat().st_size if path is not None and path.exists() else 0

    def wants(self) -> bool:
        return self._path is not None and self._rng.random() < self._rate

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record; False (and nothing written) once the byte budget is spent."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        if self._path is None or self._written + len(line) > self._max:
            return False
        if self._fh is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._path.open("a", encoding="utf-8")
        self._fh.write(line)
        self._fh.flush()
        self._written += len(line)
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class FeedbackResult:
    request_id: str
    row: int
    prediction: Any
    label: int
    correct: bool


class FeedbackBook:
    """Remembers the last ``capacity`` predictions by request id and scores labels against them."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        # request id -> (predictions, rows already labelled)
        self._served: OrderedDict[str, tuple[list[Any], set[int]]] = OrderedDict()
        self.total = 0
        self.correct = 0

    def remember(self, request_id: str, predictions: list[Any]) -> None:
        self._served[request_id] = (predictions, set())
        if len(self._served) > self._capacity:
            self._served.popitem(last=False)

    def record(self, request_id: str, label: int, row: int | None) -> FeedbackResult:
        served = self._served.get(request_id)
        if served is None:
            raise RequestRejected(
                f"no prediction with request_id '{request_id}' is known here (unknown, or older "
                f"than the last {self._capacity} predictions)", status=404, field="request_id")
        preds, labelled = served
        index = _row_index(row, len(preds))
        if index in labelled:
            raise RequestRejected(f"request '{request_id}' row {index} already has a label",
                                  status=409, field="request_id")
        labelled.add(index)
        correct = _same_label(preds[index], label)
        self.total += 1
        self.correct += int(correct)
        return FeedbackResult(request_id, index, preds[index], label, correct)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


def _row_index(row: int | None, rows: int) -> int:
    if row is None:
        if rows != 1:
            raise RequestRejected(f"the request had {rows} rows: say which one with 'row'",
                                  field="row")
        return 0
    if not 0 <= row < rows:
        raise RequestRejected(f"'row' must be within [0, {rows - 1}], got {row}", field="row")
    return row


def _same_label(prediction: Any, label: int) -> bool:
    # labels arrive as 0/1 while a model may predict bools or numpy-typed ints
    return bool(prediction == label)
