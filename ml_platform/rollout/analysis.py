"""Canary analysis: one pure function from (stable, canary, policy) to an :class:`Assessment`.

Each check guards its own sample size, so a verdict is never drawn from too little evidence:

* error rate, p95 latency and prediction shift need ``min_requests`` canary requests, else they
  are *insufficient* and the assessment is **inconclusive** (weights are held, never advanced);
* prediction shift also needs ``min_requests`` stable requests for a baseline. Without one (after
  a blue/green switch the stable variant serves nothing) the check is *skipped*, and says so;
* live accuracy is judged only when the policy sets ``min_live_accuracy``, and only once
  ``min_feedback`` labels came back; before that the assessment is **hold** (serving is healthy,
  labels lag behind).

Any failed check means **rollback**, whatever the other checks say. Precedence is therefore
rollback > inconclusive > hold > advance, and each metric moves its check monotonically (more
errors, more latency, more shift or less accuracy can only make the action worse).
"""

from __future__ import annotations

from ml_platform.config import AnalysisSpec, Direction
from ml_platform.rollout.model import Action, Assessment, Check, VariantMetrics, Verdict

_LOWER, _HIGHER = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER
TRAFFIC_METRICS: frozenset[str] = frozenset({"error_rate", "p95_latency_ms", "prediction_shift"})


def assess(stable: VariantMetrics, canary: VariantMetrics, policy: AnalysisSpec) -> Assessment:
    """Judge the canary against the stable variant; total and deterministic."""
    checks = (
        _error_rate(canary, stable, policy),
        _latency(canary, stable, policy),
        _prediction_shift(canary, stable, policy),
        _live_accuracy(canary, stable, policy),
    )
    action = _action(checks)
    return Assessment(
        action=action,
        reasons=_reasons(action, checks),
        checks=checks,
        stable=stable,
        canary=canary,
    )


def _action(checks: tuple[Check, ...]) -> Action:
    if any(c.verdict == "fail" for c in checks):
        return "rollback"
    if any(c.verdict == "insufficient" and c.metric in TRAFFIC_METRICS for c in checks):
        return "inconclusive"
    if any(c.verdict == "insufficient" for c in checks):
        return "hold"
    return "advance"


def _reasons(action: Action, checks: tuple[Check, ...]) -> tuple[str, ...]:
    wanted = {"rollback": ("fail",), "inconclusive": ("insufficient",), "hold": ("insufficient",)}
    verdicts = wanted.get(action, ("pass",))
    return tuple(c.message for c in checks if c.verdict in verdicts)


def _too_few_requests(metric: str, canary: VariantMetrics, policy: AnalysisSpec) -> str | None:
    if canary.requests >= policy.min_requests:
        return None
    return (
        f"{metric}: canary served {canary.requests} request(s); "
        f"need {policy.min_requests} to judge it"
    )


def _error_rate(canary: VariantMetrics, stable: VariantMetrics, policy: AnalysisSpec) -> Check:
    observed = canary.errors / canary.requests if canary.requests else None
    baseline = stable.errors / stable.requests if stable.requests else None
    limit = policy.max_error_rate
    short = _too_few_requests("error_rate", canary, policy)
    verdict: Verdict
    if short or observed is None:
        verdict, message = "insufficient", short or ""
    else:
        ok = observed <= limit
        verdict = "pass" if ok else "fail"
        message = (
            f"error_rate: canary {observed:.4g} ({canary.errors}/{canary.requests}) "
            f"{'<=' if ok else '>'} limit {limit:.4g}"
        )
    return Check("error_rate", verdict, observed, limit, baseline, _LOWER, message)


def _latency(canary: VariantMetrics, stable: VariantMetrics, policy: AnalysisSpec) -> Check:
    observed, limit = canary.p95_latency_ms, policy.max_p95_latency_ms
    short = _too_few_requests("p95_latency_ms", canary, policy)
    verdict: Verdict
    if short:
        verdict, message = "insufficient", short
    else:
        ok = observed <= limit
        verdict = "pass" if ok else "fail"
        message = (
            f"p95_latency_ms: canary {observed:.4g} ms {'<=' if ok else '>'} limit {limit:.4g} ms "
            f"(stable {stable.p95_latency_ms:.4g} ms)"
        )
    return Check("p95_latency_ms", verdict, observed, limit, stable.p95_latency_ms, _LOWER, message)


def _prediction_shift(
    canary: VariantMetrics, stable: VariantMetrics, policy: AnalysisSpec
) -> Check:
    observed = abs(canary.mean_score - stable.mean_score)
    limit = policy.max_prediction_shift
    short = _too_few_requests("prediction_shift", canary, policy)
    verdict: Verdict
    if short:
        verdict, message = "insufficient", short
    elif canary.score_samples < policy.min_requests:
        verdict = "insufficient"
        message = (
            f"prediction_shift: the canary server holds {canary.score_samples} score(s) "
            f"(restarted?); need {policy.min_requests} to judge it"
        )
    elif stable.score_samples < policy.min_requests:
        verdict = "skipped"
        message = (
            f"prediction_shift: stable has {stable.score_samples} score(s) in this window, "
            f"too few for a baseline (need {policy.min_requests}); shift not judged"
        )
    else:
        ok = observed <= limit
        verdict = "pass" if ok else "fail"
        message = (
            f"prediction_shift: |canary {canary.mean_score:.4g} - stable "
            f"{stable.mean_score:.4g}| = {observed:.4g} {'<=' if ok else '>'} limit {limit:.4g}"
        )
    return Check("prediction_shift", verdict, observed, limit, stable.mean_score, _LOWER, message)


def _live_accuracy(canary: VariantMetrics, stable: VariantMetrics, policy: AnalysisSpec) -> Check:
    floor, observed = policy.min_live_accuracy, canary.live_accuracy
    verdict: Verdict
    if floor is None:
        verdict, message = "skipped", "live_accuracy: no min_live_accuracy in the policy"
    elif observed is None or canary.feedback_count < policy.min_feedback:
        verdict = "insufficient"
        message = (
            f"live_accuracy: {canary.feedback_count} label(s) came back for the canary; "
            f"need {policy.min_feedback} to judge it"
        )
    else:
        ok = observed >= floor
        verdict = "pass" if ok else "fail"
        message = (
            f"live_accuracy: canary {observed:.4g} on {canary.feedback_count} label(s) "
            f"{'>=' if ok else '<'} floor {floor:.4g}"
        )
    return Check("live_accuracy", verdict, observed, floor, stable.live_accuracy, _HIGHER, message)
