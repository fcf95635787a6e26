"""no_regression_vs_champion: candidate and champion scored side by side on the same holdout.

The gate decides on the point estimates (the candidate may be worse by at most ``tolerance``);
the paired bootstrap interval of the difference is evidence for the reader, so a "regression"
that sits well inside the noise is visible as such without making the gate itself random.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_platform.config import Direction, GateMode, RegressionSpec
from ml_platform.errors import ConfigError
from ml_platform.gates import MetricThreshold, Verdict
from ml_platform.model_gates._common import ArrayLike, as_labels, as_scores, fmt
from ml_platform.model_gates._metrics import ScoreMetric, get_metric, paired_bootstrap

GATE = "no_regression_vs_champion"
NO_CHAMPION = "no champion yet: judged on absolute thresholds alone"


def _metric_for(spec: RegressionSpec) -> ScoreMetric:
    metric = get_metric(spec.metric, field="gates.regression.metric")
    # the metric knows its own direction; an explicit, contradicting setting is a config bug
    if "direction" in spec.model_fields_set and spec.direction is not metric.direction:
        raise ConfigError(
            f"direction '{spec.direction.value}' contradicts metric '{metric.name}', which is "
            f"{metric.direction.value}; remove the setting",
            field="gates.regression.direction",
        )
    return metric


def _bound(metric: ScoreMetric, champion: float, tolerance: float) -> float:
    if metric.direction is Direction.HIGHER_IS_BETTER:
        return champion - tolerance
    return champion + tolerance


def _interval(diffs: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    if diffs.size == 0:
        return None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _message(ok: bool, metric: ScoreMetric, d: dict[str, Any]) -> str:
    op = ">=" if metric.direction is Direction.HIGHER_IS_BETTER else "<="
    ci = (
        f", {d['confidence']:.0%} CI [{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]"
        if d["ci_low"] is not None
        else ""
    )
    head = "no regression" if ok else f"{metric.name} regressed"
    return (
        f"{head}: candidate {metric.name} = {fmt(d['candidate'])} vs champion "
        f"{fmt(d['champion'])} (difference {fmt(d['difference'])}{ci}); bound {op} "
        f"{fmt(d['bound'])} (champion with tolerance {fmt(d['tolerance'])})"
    )


def _compare(
    metric: ScoreMetric,
    y: np.ndarray,
    cand: np.ndarray,
    champ: np.ndarray,
    spec: RegressionSpec,
    seed: int,
) -> dict[str, Any]:
    cand_value, champ_value = metric.value(y, cand), metric.value(y, champ)
    diffs = paired_bootstrap(metric, y, cand, champ, n_samples=spec.bootstrap_samples, seed=seed)
    ci_low, ci_high = _interval(diffs, spec.confidence)
    return {
        "metric": metric.name,
        "candidate": cand_value,
        "champion": champ_value,
        "difference": cand_value - champ_value,
        "tolerance": spec.tolerance,
        "bound": _bound(metric, champ_value, spec.tolerance),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "confidence": spec.confidence,
        "bootstrap_samples": spec.bootstrap_samples,
        "valid_resamples": int(diffs.size),
        "seed": seed,
        "rows": int(y.shape[0]),
    }


def no_regression_vs_champion(
    y_true: ArrayLike,
    candidate_scores: ArrayLike,
    champion_scores: ArrayLike | None,
    spec: RegressionSpec,
    mode: GateMode,
    *,
    seed: int = 0,
) -> Verdict:
    """Fail when the candidate is worse than the champion by more than ``spec.tolerance``."""
    metric = _metric_for(spec)
    y = as_labels(y_true)
    cand = as_scores(candidate_scores, y.shape[0], what="candidate_scores")
    if champion_scores is None:
        return Verdict(
            gate=GATE,
            passed=True,
            message=NO_CHAMPION,
            observed=metric.value(y, cand),
            direction=metric.direction,
            mode=mode,
            details={"metric": metric.name},
        )
    champ = as_scores(champion_scores, y.shape[0], what="champion_scores")
    d = _compare(metric, y, cand, champ, spec, seed)
    ok = MetricThreshold(metric.name, d["bound"], metric.direction).satisfied_by(d["candidate"])
    return Verdict(
        gate=GATE,
        passed=ok,
        message=_message(ok, metric, d),
        observed=d["candidate"],
        threshold=d["bound"],
        baseline=d["champion"],
        direction=metric.direction,
        mode=mode,
        details=d,
    )
