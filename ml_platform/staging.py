"""The staging environment: one variant behind the router, and its smoke gate.

``deploy_staging`` serves a model as the only variant of the project's staging environment;
``staging_smoke`` checks health, golden predictions identical to in-process ones, and p95
latency through the router. Both are re-exported by :mod:`ml_platform.cd`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from ml_platform._cd_support import p95, probe_predict
from ml_platform.config import Direction, ProjectConfig
from ml_platform.errors import DeploymentError
from ml_platform.gates import Verdict
from ml_platform.settings import PlatformPaths
from ml_platform.tracking import ModelRef, ModelRegistry

if TYPE_CHECKING:
    from ml_platform.cd import Environment, ServingEndpoint


def deploy_staging(project_cfg: ProjectConfig, ref: ModelRef, paths: PlatformPaths, *,
                   env: Environment | None = None) -> ServingEndpoint:
    """Serve ``ref`` as the only variant of the staging environment (idempotent)."""
    from ml_platform.cd import Environment, ServingEndpoint

    env = env or Environment(project_cfg.name, "staging", paths)
    server = env.ensure_server("stable", ref)
    url = env.ensure_router(server.url)
    env.sync_router()
    others = {n: v for n, v in env.variants().items() if n != "stable"}
    if others or env.variants()["stable"]["weight"] == 0:
        env._admin("PUT", "state", {"variants": {"stable": {"url": server.url, "weight": 100}}})
    return ServingEndpoint(project_cfg.name, env.name, url, str(ref.version),
                           ref.digest or "", server)


def golden_scores(registry: ModelRegistry, ref: ModelRef, rows: pd.DataFrame) -> list[float]:
    """P(positive) of ``rows`` computed in-process: what the served model must answer."""
    model = registry.load_sklearn(ref)
    return [float(s) for s in model.predict_proba(rows)[:, 1]]


def staging_smoke(endpoint: ServingEndpoint, golden_rows: pd.DataFrame,
                  expected_scores: Sequence[float], latency_budget_ms: float, *,
                  requests: int = 50, tolerance: float = 1e-9,
                  timeout_s: float = 10.0) -> Verdict:
    """Health, golden predictions identical to in-process ones, and p95 latency, via the router."""
    if len(golden_rows) != len(expected_scores) or len(golden_rows) == 0:
        raise DeploymentError(f"staging_smoke needs one expected score per golden row, got "
                              f"{len(golden_rows)} rows and {len(expected_scores)} scores")
    golden = records(golden_rows)
    problems: list[str] = []
    with httpx.Client(timeout=timeout_s) as client:
        health = _health(client, endpoint)
        problems += [f"{what} is not ready" for what, ok in health.items() if not ok]
        diff, served_version = math.inf, None
        if not problems:
            probe = probe_predict(client, endpoint.url, golden)
            served_version = probe.body.get("model_version")
            diff, issue = _golden_diff(probe.status, probe.body, expected_scores, tolerance)
            problems += [issue] if issue else []
        latencies = [] if problems else [
            probe_predict(client, endpoint.url, [golden[i % len(golden)]]).latency_ms
            for i in range(requests)]
    observed = p95(latencies)
    if latencies and observed > latency_budget_ms:
        problems.append(f"p95 latency {observed:.1f} ms > budget {latency_budget_ms:g} ms")
    if served_version is not None and str(served_version) != endpoint.model_version:
        problems.append(f"served version {served_version}, expected {endpoint.model_version}")
    ok = not problems
    message = (f"staging serves version {endpoint.model_version}: golden predictions identical "
               f"(max |diff| {diff:.3g}), p95 {observed:.1f} ms <= {latency_budget_ms:g} ms"
               if ok else f"staging smoke failed for version {endpoint.model_version}: "
               + "; ".join(problems))
    return Verdict(gate="staging_smoke", passed=ok, message=message,
                   observed=None if math.isnan(observed) else round(observed, 3),
                   threshold=latency_budget_ms, direction=Direction.LOWER_IS_BETTER,
                   details={"health": health, "golden_rows": len(golden),
                            "golden_max_abs_diff": None if math.isinf(diff) else diff,
                            "latency_requests": len(latencies), "router": endpoint.url,
                            "server": endpoint.server.url, "problems": problems})


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows, as a client would send them."""
    out: list[dict[str, Any]] = json.loads(rows.to_json(orient="records"))
    return out


def _health(client: httpx.Client, endpoint: ServingEndpoint) -> dict[str, bool]:
    out = {}
    for what, url in (("router", endpoint.url), ("server", endpoint.server.url)):
        try:
            out[what] = client.get(f"{url.rstrip('/')}/ready").status_code == 200
        except httpx.HTTPError:
            out[what] = False
    return out


def _golden_diff(status: int, body: dict[str, Any], expected: Sequence[float],
                 tolerance: float) -> tuple[float, str | None]:
    scores = body.get("scores")
    if status != 200 or not isinstance(scores, list) or len(scores) != len(expected):
        return math.inf, f"golden request answered {status} with {str(body)[:200]}"
    diffs = [abs(float(a) - float(b)) for a, b in zip(scores, expected, strict=True)]
    worst = max(diffs)
    if worst > tolerance:
        bad = sum(d > tolerance for d in diffs)
        return worst, f"{bad} golden row(s) differ from in-process scores (max |diff| {worst:.3g})"
    return worst, None
