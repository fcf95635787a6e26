"""The rollout's seams over the weighted router (``ml_platform.serving.router``).

* :class:`RouterTrafficController` – :class:`~ml_platform.rollout.reconcile.TrafficController`
  through the router's admin API (``GET|PUT /admin/weights``, ``/admin/state``, bearer token).
* :class:`RouterMetricsSource` – :class:`~ml_platform.rollout.reconcile.MetricsSource` from
  Prometheus text: the router's ``/metrics`` (requests, 5xx, latency per variant) and each
  variant server's ``/metrics`` (prediction scores, feedback and live accuracy).

Variant names are the router's: ``stable`` and ``canary`` by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ml_platform.deploy.base import Deployer
from ml_platform.errors import DeploymentError
from ml_platform.rollout.model import VariantMetrics


class _Admin:
    """The router's admin API; the token is sent, never logged or put in an error."""

    def __init__(self, router_url: str, token: str, client: httpx.Client | None) -> None:
        self.url = router_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"}
        self._http = client or httpx.Client(timeout=5.0)

    def get(self, what: str) -> dict[str, Any]:
        return self._call("GET", what, None)

    def put(self, what: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("PUT", what, body)

    def variants(self) -> dict[str, dict[str, Any]]:
        """``{name: {"url", "weight"}}`` as the router applies it now."""
        state = self.get("state")["variants"]
        return {n: {"url": v["url"], "weight": v["weight"]} for n, v in state.items()}

    def _call(self, method: str, what: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        url = f"{self.url}/admin/{what}"
        try:
            reply = self._http.request(method, url, json=body, headers=self._headers)
        except httpx.HTTPError as e:
            raise DeploymentError(f"router admin API {method} {url} unreachable: "
                                  f"{type(e).__name__}: {e}; is the router running?") from e
        if reply.status_code == 401:
            raise DeploymentError(f"router at {self.url} rejected the admin token; pass the "
                                  "token the router was started with")
        if reply.status_code != 200:
            raise DeploymentError(f"router admin API {method} {url} answered "
                                  f"{reply.status_code}: {reply.text[:300]}")
        data: dict[str, Any] = reply.json()
        return data


class RouterTrafficController:
    """Weights, promotion and rollback of a stable/canary pair on the router.

    With a ``deployer``, promotion and rollback also tidy the servers: rollback stops the
    canary deployment; promotion stops the old stable server and re-files the canary
    deployment as ``stable``. Both are idempotent (the reconciler may repeat them).
    """

    def __init__(self, router_url: str, token: str, *, stable: str = "stable",
                 canary: str = "canary", deployer: Deployer[Any] | None = None,
                 client: httpx.Client | None = None) -> None:
        self._admin = _Admin(router_url, token, client)
        self.stable, self.canary = stable, canary
        self._deployer = deployer

    def current_weights(self) -> tuple[int, int]:
        weights = self._admin.get("weights")["weights"]
        stable, canary = int(weights.get(self.stable, 0)), int(weights.get(self.canary, 0))
        if stable + canary == 0:
            raise DeploymentError(f"router sends no traffic to '{self.stable}' or "
                                  f"'{self.canary}' (weights {weights})")
        canary_pct = round(100 * canary / (stable + canary))
        return 100 - canary_pct, canary_pct

    def set_weights(self, stable: int, canary: int) -> None:
        if not (0 <= stable <= 100 and 0 <= canary <= 100 and stable + canary == 100):
            raise DeploymentError(f"weights must be percentages adding up to 100, got "
                                  f"stable={stable} canary={canary}")
        known = self._admin.variants()
        wanted = {self.stable: stable, self.canary: canary}
        if self.canary not in known:
            if canary > 0:
                raise DeploymentError(f"the router has no '{self.canary}' variant to send "
                                      f"{canary} % to; deploy it and attach_canary(url) first")
            del wanted[self.canary]
        applied = self._admin.put("weights", {"weights": wanted})["weights"]
        if any(applied.get(k) != v for k, v in wanted.items()):
            raise DeploymentError(f"router applied weights {applied}, not {wanted}")

    def attach_canary(self, url: str, weight: int = 0) -> None:
        """Add (or re-point) the canary variant, at ``weight`` (0: staged, no user traffic)."""
        variants = self._admin.variants()
        variants[self.canary] = {"url": url, "weight": weight}
        self._admin.put("state", {"variants": variants})

    def promote(self, candidate_version: str) -> None:
        variants = self._admin.variants()
        canary = variants.pop(self.canary, None)
        if canary is not None:
            variants[self.stable] = {"url": canary["url"], "weight": 100}
            self._admin.put("state", {"variants": variants})
        elif self._serving_version(variants) != str(candidate_version):
            raise DeploymentError(
                f"cannot promote {candidate_version}: the router has no '{self.canary}' "
                f"variant and '{self.stable}' does not serve it; deploy the candidate first")
        if self._deployer is not None:
            self._retire_old_stable(variants[self.stable]["url"])

    def rollback(self) -> None:
        variants = self._admin.variants()
        if self.canary in variants:
            del variants[self.canary]
            variants[self.stable]["weight"] = 100
            self._admin.put("state", {"variants": variants})
        if self._deployer is not None:
            self._deployer.stop(self.canary)

    def _serving_version(self, variants: Mapping[str, Mapping[str, Any]]) -> str | None:
        stable = variants.get(self.stable)
        if stable is None:
            return None
        try:
            reply = httpx.get(f"{stable['url'].rstrip('/')}/ready", timeout=5.0)
        except httpx.HTTPError:
            return None
        return str(reply.json().get("model_version")) if reply.status_code == 200 else None

    def _retire_old_stable(self, stable_url: str) -> None:
        assert self._deployer is not None
        old = self._deployer.endpoint(self.stable)
        if old is not None and old.url.rstrip("/") != stable_url.rstrip("/"):
            self._deployer.stop(self.stable)
        new = self._deployer.endpoint(self.canary)
        if new is not None and new.url.rstrip("/") == stable_url.rstrip("/"):
            self._deployer.rename(self.canary, self.stable)


# -- metrics ---------------------------------------------------------------------------------


@dataclass
class _Counts:
    """Cumulative Prometheus values of one variant; subtracting two gives a window.

    Two processes feed it: the router (requests, errors, latency) and the variant's server
    (scores, feedback). Either can restart on its own, so each part detects its own counter
    reset (a value that went down, or a server at another URL) and then counts from zero, as
    Prometheus' ``rate()`` does. Mixing them (one reset check for both) once made a restarted
    stable server look like a huge prediction shift.
    """

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    score_sum: float = 0.0
    score_count: float = 0.0
    feedback: float = 0.0
    correct: float = 0.0
    server_url: str | None = None

    def minus(self, base: _Counts) -> _Counts:
        traffic = base
        if self.requests < base.requests or any(
                n < base.buckets.get(le, 0.0) for le, n in self.buckets.items()):
            traffic = _Counts()  # the traffic source restarted: its counters began again
        quality = base
        if (self.server_url != base.server_url or self.score_count < base.score_count
                or self.feedback < base.feedback):
            quality = _Counts()  # a new server process: scores and feedback since it started
        return _Counts(
            self.requests - traffic.requests, self.errors - traffic.errors,
            {le: n - traffic.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.score_sum - quality.score_sum, self.score_count - quality.score_count,
            self.feedback - quality.feedback, self.correct - quality.correct, self.server_url,
        )

    def to_metrics(self) -> VariantMetrics:
        requests = int(self.requests)
        feedback = int(self.feedback)
        return VariantMetrics(
            requests=requests, errors=min(int(self.errors), requests),
            p95_latency_ms=1000 * histogram_quantile(0.95, self.buckets),
            mean_score=self.score_sum / self.score_count if self.score_count else 0.0,
            feedback_count=feedback,
            live_accuracy=self.correct / feedback if feedback else None,
            scored=int(self.score_count),
        )


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' estimate: linear interpolation inside the bucket holding the q-th value."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower  # above the largest finite bucket: its bound is all we know
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


class RouterMetricsSource:
    """Per-variant metrics since the last :meth:`mark` (or since the processes started).

    Requests, 5xx errors and latency come from the router, as users see them. A variant the
    router has sent nothing to (a blue/green preview) is measured on its own server instead,
    from the smoke traffic sent to it directly. Scores and feedback always come from the
    variant's server, whose URL the router's admin state gives.
    """

    def __init__(self, router_url: str, token: str, *, stable: str = "stable",
                 canary: str = "canary", client: httpx.Client | None = None) -> None:
        self._http = client or httpx.Client(timeout=5.0)
        self._admin = _Admin(router_url, token, self._http)
        self.router_url = router_url.rstrip("/")
        self.stable, self.canary = stable, canary
        self._baseline: dict[str, _Counts] = {}

    def variant_metrics(self) -> tuple[VariantMetrics, VariantMetrics]:
        now = self._snapshot()
        return tuple(  # type: ignore[return-value]
            now[v].minus(self._baseline.get(v, _Counts())).to_metrics()
            for v in (self.stable, self.canary)
        )

    def mark(self) -> None:
        """Start a new window now (e.g. when a canary step begins)."""
        self._baseline = self._snapshot()

    def _snapshot(self) -> dict[str, _Counts]:
        urls = {n: v["url"] for n, v in self._admin.variants().items()}
        router = _parse(self._scrape(f"{self.router_url}/metrics"))
        out: dict[str, _Counts] = {}
        for variant in (self.stable, self.canary):
            counts = _Counts(server_url=urls.get(variant))
            server = _parse(self._scrape(f"{urls[variant]}/metrics")) if variant in urls else []
            if _router_counts(router, variant, counts) == 0 and server:
                _server_counts(server, counts)  # nothing routed to it: its direct traffic
            _quality_counts(server, counts)
            out[variant] = counts
        return out

    def _scrape(self, url: str) -> str:
        try:
            reply = self._http.get(url)
        except httpx.HTTPError as e:
            raise DeploymentError(f"cannot read metrics from {url}: {type(e).__name__}: {e}"
                                  ) from e
        if reply.status_code != 200:
            raise DeploymentError(f"metrics endpoint {url} answered {reply.status_code}")
        return reply.text


Sample = tuple[str, dict[str, str], float]


def _parse(text: str) -> list[Sample]:
    return [(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text) for s in family.samples]


def _router_counts(samples: list[Sample], variant: str, counts: _Counts) -> float:
    for name, labels, value in samples:
        if labels.get("variant") != variant or labels.get("endpoint") != "predict":
            continue
        if name == "router_requests_total":
            counts.requests += value
            counts.errors += value if labels.get("status", "").startswith("5") else 0.0
        elif name == "router_request_latency_seconds_bucket":
            counts.buckets[float(labels["le"])] = value
    return counts.requests


def _server_counts(samples: list[Sample], counts: _Counts) -> None:
    for name, labels, value in samples:
        if labels.get("endpoint") != "predict":
            continue
        if name == "model_requests_total":
            counts.requests += value
            counts.errors += value if labels.get("status", "").startswith("5") else 0.0
        elif name == "model_request_latency_seconds_bucket":
            counts.buckets[float(labels["le"])] = value


def _quality_counts(samples: list[Sample], counts: _Counts) -> None:
    for name, _labels, value in samples:
        if name == "model_prediction_score_sum":
            counts.score_sum = value
        elif name == "model_prediction_score_count":
            counts.score_count = value
        elif name == "model_feedback_total":
            counts.feedback = value
        elif name == "model_feedback_correct_total":
            counts.correct = value
