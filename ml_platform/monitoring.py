"""Serving monitor: is the live model still fit for its traffic, and should it be retrained?

Three checks over what production logged and counted:

* ``live_input_drift`` – the model servers' sampled input log vs the training reference, scored by
  :func:`ml_platform.drift.compute_drift` (the same Evidently gate as the data pipeline). Fewer
  than ``min_rows`` logged rows is *insufficient*: too little to call drift, never drift;
* ``error_budget`` – 5xx share of the router's requests vs ``rollout.analysis.max_error_rate``;
* ``live_accuracy`` – labels sent back through ``/feedback`` vs ``analysis.min_live_accuracy``.

Drift or lost accuracy asks for retraining. A blown error budget is a serving fault (retraining
will not fix a crashing server), so it makes the result unhealthy without asking for a retrain.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ml_platform.config import Direction, GateMode, ProjectConfig
from ml_platform.drift import DriftResult, compute_drift
from ml_platform.errors import DeploymentError
from ml_platform.gates import Verdict
from ml_platform.rollout.model import VariantMetrics
from ml_platform.settings import PlatformPaths

CheckStatus = Literal["pass", "fail", "insufficient", "skipped"]
MonitorStatus = Literal["healthy", "unhealthy", "inconclusive"]


@dataclass(frozen=True)
class MonitorCheck:
    name: str
    status: CheckStatus
    observed: float | None
    threshold: float | None
    direction: Direction
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def verdict(self) -> Verdict:
        """As a gate verdict (warning mode: the monitor informs, the retrain request acts)."""
        return Verdict(gate=self.name, passed=self.status != "fail", message=self.message,
                       observed=self.observed, threshold=self.threshold,
                       direction=self.direction, mode=GateMode.WARNING,
                       details={"status": self.status, **self.details})


@dataclass(frozen=True)
class LiveInputs:
    frame: pd.DataFrame = field(repr=False)
    files: tuple[str, ...]
    rows: int
    skipped_lines: int  # lines that were not JSON prediction records (reported, not hidden)


@dataclass(frozen=True)
class MonitorResult:
    project: str
    status: MonitorStatus
    retrain: bool
    reason: str
    checks: tuple[MonitorCheck, ...]
    live_rows: int
    drift: DriftResult | None = field(default=None, repr=False)

    def check(self, name: str) -> MonitorCheck:
        return next(c for c in self.checks if c.name == name)

    def metadata(self) -> dict[str, Any]:
        return {"status": self.status, "retrain": self.retrain, "reason": self.reason,
                "live_rows": self.live_rows,
                "checks": {c.name: c.verdict().to_dict() for c in self.checks}}


def read_sample_logs(paths: Sequence[Path], columns: Sequence[str], *,
                     max_rows: int = 50_000) -> LiveInputs:
    """The newest ``max_rows`` logged input rows of the given JSONL sample logs."""
    rows: deque[dict[str, Any]] = deque(maxlen=max_rows)
    skipped, used = 0, []
    for path in paths:
        if not path.is_file():
            continue
        used.append(str(path))
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                record = _record(line)
                if record is None:
                    skipped += 1
                elif record.get("type") != "feedback":
                    rows.extend(_rows(record["inputs"], columns))
    frame = pd.DataFrame(list(rows), columns=list(columns))
    return LiveInputs(frame, tuple(used), len(frame), skipped)


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a line cut short by a crash mid-write
    if not isinstance(record, dict):
        return None
    if record.get("type") == "feedback" or isinstance(record.get("inputs"), dict):
        return record
    return None


def _rows(inputs: Mapping[str, list[Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    present = [c for c in columns if c in inputs]
    n = len(inputs[present[0]]) if present else 0
    return [{c: inputs[c][i] if c in inputs else None for c in columns} for i in range(n)]


def serving_monitor(cfg: ProjectConfig, reference_frame: pd.DataFrame,
                    sample_log_paths: Sequence[Path],
                    router_stats: Mapping[str, VariantMetrics], *, min_rows: int,
                    max_rows: int = 50_000) -> MonitorResult:
    """Drift of live inputs, error budget and live accuracy; see the module docstring."""
    columns = [c for c in (cfg.drift.columns or cfg.training_features)
               if c in cfg.training_features]  # the servers log what the model receives
    live = read_sample_logs(sample_log_paths, columns, max_rows=max_rows)
    drift_check, drift = _drift(cfg, reference_frame, live, columns, min_rows)
    total = _total(router_stats)
    checks = (drift_check, _error_budget(cfg, total), _accuracy(cfg, total))
    return _result(cfg.name, checks, live.rows, drift)


def _total(stats: Mapping[str, VariantMetrics]) -> VariantMetrics:
    requests = sum(m.requests for m in stats.values())
    feedback = sum(m.feedback_count for m in stats.values())
    correct = sum((m.live_accuracy or 0.0) * m.feedback_count for m in stats.values())
    return VariantMetrics(requests=requests, errors=sum(m.errors for m in stats.values()),
                          p95_latency_ms=max((m.p95_latency_ms for m in stats.values()),
                                             default=0.0),
                          mean_score=0.0, feedback_count=feedback,
                          live_accuracy=correct / feedback if feedback else None)


def _drift(cfg: ProjectConfig, reference: pd.DataFrame, live: LiveInputs, columns: list[str],
           min_rows: int) -> tuple[MonitorCheck, DriftResult | None]:
    limit = cfg.drift.drift_share
    details = {"files": list(live.files), "skipped_lines": live.skipped_lines}
    if live.rows < min_rows:
        return MonitorCheck(
            "live_input_drift", "insufficient", None, limit, Direction.LOWER_IS_BETTER,
            f"live_input_drift: {live.rows} logged row(s), need {min_rows} to judge drift",
            details), None
    scoped = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"columns": columns})})
    result = compute_drift(reference, live.frame, scoped)
    status: CheckStatus = "fail" if result.dataset_drift else "pass"
    return MonitorCheck("live_input_drift", status, result.share_drifted, limit,
                        Direction.LOWER_IS_BETTER, f"live_input_drift: {result.message()}",
                        {**details, "drifted_columns": result.drifted_columns}), result


def _error_budget(cfg: ProjectConfig, total: VariantMetrics) -> MonitorCheck:
    a = cfg.rollout.analysis
    if total.requests < a.min_requests:
        return MonitorCheck("error_budget", "insufficient", None, a.max_error_rate,
                            Direction.LOWER_IS_BETTER,
                            f"error_budget: {total.requests} request(s), need {a.min_requests}")
    rate = total.errors / total.requests
    ok = rate <= a.max_error_rate
    return MonitorCheck("error_budget", "pass" if ok else "fail", rate, a.max_error_rate,
                        Direction.LOWER_IS_BETTER,
                        f"error_budget: {total.errors}/{total.requests} failed ({rate:.4g}) "
                        f"{'<=' if ok else '>'} limit {a.max_error_rate:.4g}",
                        {"requests": total.requests, "errors": total.errors})


def _accuracy(cfg: ProjectConfig, total: VariantMetrics) -> MonitorCheck:
    a = cfg.rollout.analysis
    floor, seen = a.min_live_accuracy, total.live_accuracy
    if floor is None:
        return MonitorCheck("live_accuracy", "skipped", seen, None, Direction.HIGHER_IS_BETTER,
                            "live_accuracy: the policy sets no min_live_accuracy")
    if seen is None or total.feedback_count < a.min_feedback:
        return MonitorCheck("live_accuracy", "insufficient", seen, floor,
                            Direction.HIGHER_IS_BETTER,
                            f"live_accuracy: {total.feedback_count} label(s), need "
                            f"{a.min_feedback}")
    ok = seen >= floor
    return MonitorCheck("live_accuracy", "pass" if ok else "fail", seen, floor,
                        Direction.HIGHER_IS_BETTER,
                        f"live_accuracy: {seen:.4g} on {total.feedback_count} label(s) "
                        f"{'>=' if ok else '<'} floor {floor:.4g}",
                        {"feedback": total.feedback_count})


def _result(project: str, checks: tuple[MonitorCheck, ...], rows: int,
            drift: DriftResult | None) -> MonitorResult:
    failed = [c for c in checks if c.status == "fail"]
    retrain_on = [c for c in failed if c.name in ("live_input_drift", "live_accuracy")]
    if failed:
        status: MonitorStatus = "unhealthy"
        reason = "; ".join(c.message for c in failed)
        if not retrain_on:
            reason += " (a serving fault: fix or roll back; retraining would not help)"
    elif any(c.status == "insufficient" and c.name == "live_input_drift" for c in checks):
        status, reason = "inconclusive", next(
            c.message for c in checks if c.name == "live_input_drift")
    else:
        status, reason = "healthy", "; ".join(c.message for c in checks if c.status == "pass")
    return MonitorResult(project, status, bool(retrain_on), reason, checks, rows, drift)


def monitor_production(cfg: ProjectConfig, paths: PlatformPaths,
                       reference_frame: pd.DataFrame, *, min_rows: int = 200) -> MonitorResult:
    """:func:`serving_monitor` on the production environment's logs and router counters."""
    from ml_platform.cd import Environment
    from ml_platform.deploy import RouterMetricsSource

    env = Environment(cfg.name, "production", paths)
    logs = sorted(env.deployer.store.dir.glob("*.samples.jsonl"))
    try:
        source = RouterMetricsSource(env.router_url(), env.token())
        stable, canary = source.variant_metrics()
    except DeploymentError as e:
        raise DeploymentError(f"serving monitor of {cfg.name}: {e}") from e
    return serving_monitor(cfg, reference_frame, logs, {"stable": stable, "canary": canary},
                           min_rows=min_rows)
