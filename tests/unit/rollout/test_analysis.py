from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_platform.config import AnalysisSpec
from ml_platform.errors import DeploymentError
from ml_platform.rollout import Assessment, VariantMetrics, assess

from .conftest import healthy_canary, healthy_stable

POLICY = AnalysisSpec(
    max_error_rate=0.02,
    max_p95_latency_ms=250.0,
    max_prediction_shift=0.1,
    min_requests=50,
    min_feedback=30,
)
WITH_ACCURACY = POLICY.model_copy(update={"min_live_accuracy": 0.75})
SEVERITY = {"advance": 0, "hold": 1, "inconclusive": 2, "rollback": 3}


def test_a_healthy_canary_advances_and_every_check_carries_its_numbers():
    a = assess(healthy_stable(), healthy_canary(), WITH_ACCURACY)
    assert a.action == "advance"
    assert [c.metric for c in a.checks] == [
        "error_rate",
        "p95_latency_ms",
        "prediction_shift",
        "live_accuracy",
    ]
    shift = a.check("prediction_shift")
    assert shift.verdict == "pass" and shift.baseline == 0.40
    assert shift.observed == pytest.approx(0.03) and shift.threshold == 0.1
    assert a.check("error_rate").observed == pytest.approx(2 / 300)


@pytest.mark.parametrize(
    ("canary", "metric", "words"),
    [
        (healthy_canary(errors=30), "error_rate", "0.1 (30/300) > limit 0.02"),
        (healthy_canary(p95_latency_ms=400.0), "p95_latency_ms", "400 ms > limit 250 ms"),
        (healthy_canary(mean_score=0.7), "prediction_shift", "= 0.3 > limit 0.1"),
        (healthy_canary(live_accuracy=0.6), "live_accuracy", "0.6 on 80 label(s) < floor 0.75"),
    ],
)
def test_any_hard_failure_rolls_back_and_names_the_metric(canary, metric, words):
    a = assess(healthy_stable(), canary, WITH_ACCURACY)
    assert a.action == "rollback"
    assert a.check(metric).verdict == "fail"
    assert len(a.reasons) == 1 and metric in a.reasons[0] and words in a.reasons[0]


def test_a_value_exactly_at_the_limit_passes():
    canary = healthy_canary(requests=100, errors=2, p95_latency_ms=250.0, mean_score=0.5)
    assert assess(healthy_stable(), canary, POLICY).action == "advance"


def test_too_little_canary_traffic_is_inconclusive_even_with_many_errors():
    a = assess(healthy_stable(), healthy_canary(requests=49, errors=40), POLICY)
    assert a.action == "inconclusive"
    assert {c.verdict for c in a.checks[:3]} == {"insufficient"}
    assert "canary served 49 request(s); need 50" in a.reasons[0]


def test_missing_feedback_holds_when_accuracy_is_part_of_the_policy():
    a = assess(healthy_stable(), healthy_canary(feedback_count=29), WITH_ACCURACY)
    assert a.action == "hold" and a.check("live_accuracy").verdict == "insufficient"
    no_labels = assess(healthy_stable(), healthy_canary(live_accuracy=None), WITH_ACCURACY)
    assert no_labels.action == "hold"
    assert assess(healthy_stable(), healthy_canary(feedback_count=0), POLICY).action == "advance"


def test_without_a_stable_baseline_the_shift_is_skipped_and_says_why():
    # After a blue/green switch the stable variant serves nothing.
    a = assess(healthy_stable(requests=0, errors=0), healthy_canary(mean_score=0.9), POLICY)
    assert a.action == "advance"
    assert a.check("prediction_shift").verdict == "skipped"
    assert "too few for a baseline" in a.check("prediction_shift").message


def test_a_restarted_stable_server_without_scores_is_no_baseline_for_the_shift():
    # the router saw 300 stable requests, but the stable server came back with 3 scores:
    # its mean score says nothing yet, so the shift is not judged on it
    a = assess(healthy_stable(scored=3, mean_score=0.0), healthy_canary(mean_score=0.3), POLICY)
    assert a.action == "advance" and a.check("prediction_shift").verdict == "skipped"
    assert "stable has 3 score(s)" in a.check("prediction_shift").message


def test_a_canary_server_without_enough_scores_is_inconclusive_not_judged():
    a = assess(healthy_stable(), healthy_canary(scored=2, mean_score=0.99), POLICY)
    assert a.action == "inconclusive" and a.check("prediction_shift").verdict == "insufficient"


@pytest.mark.parametrize(
    "changes",
    [
        {"requests": -1},
        {"scored": -1},
        {"errors": 301},
        {"p95_latency_ms": float("nan")},
        {"p95_latency_ms": -1.0},
        {"mean_score": float("inf")},
        {"live_accuracy": 1.5},
    ],
)
def test_impossible_metrics_are_refused_at_construction(changes):
    with pytest.raises(DeploymentError, match="invalid variant metrics"):
        healthy_canary(**changes)


# Properties


@st.composite
def metrics(draw: st.DrawFn) -> VariantMetrics:
    requests = draw(st.integers(0, 10_000))
    return VariantMetrics(
        requests=requests,
        errors=draw(st.integers(0, requests)),
        p95_latency_ms=draw(st.floats(0, 10_000, allow_nan=False)),
        mean_score=draw(st.floats(-1e6, 1e6, allow_nan=False)),
        feedback_count=draw(st.integers(0, requests)),
        live_accuracy=draw(st.none() | st.floats(0, 1)),
    )


policies = st.builds(
    AnalysisSpec,
    max_error_rate=st.floats(0, 1),
    max_p95_latency_ms=st.floats(1, 5_000),
    max_prediction_shift=st.floats(0, 10),
    min_live_accuracy=st.none() | st.floats(0, 1),
    min_requests=st.integers(1, 500),
    min_feedback=st.integers(1, 500),
)


@given(metrics(), metrics(), policies)
def test_assess_is_total_and_deterministic(stable, canary, policy):
    first = assess(stable, canary, policy)
    assert isinstance(first, Assessment)
    assert first == assess(stable, canary, policy)
    assert first.reasons  # every action is explained
    if first.action == "rollback":
        assert any(c.verdict == "fail" for c in first.checks)
    if first.action == "advance":
        assert all(c.verdict in ("pass", "skipped") for c in first.checks)


@given(metrics(), metrics(), policies, st.integers(0, 10_000))
def test_more_errors_never_make_the_action_better(stable, canary, policy, extra):
    worse = replace(canary, errors=min(canary.requests, canary.errors + extra))
    before, after = assess(stable, canary, policy), assess(stable, worse, policy)
    assert SEVERITY[after.action] >= SEVERITY[before.action]
    if before.action == "rollback":
        assert after.action == "rollback"


@given(metrics(), metrics(), policies, st.floats(0, 10_000))
def test_more_latency_never_makes_the_action_better(stable, canary, policy, extra):
    slower = replace(canary, p95_latency_ms=canary.p95_latency_ms + extra)
    before, after = assess(stable, canary, policy), assess(stable, slower, policy)
    assert SEVERITY[after.action] >= SEVERITY[before.action]


@given(metrics(), metrics(), policies, st.floats(0, 1))
def test_lower_live_accuracy_never_makes_the_action_better(stable, canary, policy, drop):
    if canary.live_accuracy is None:
        return
    worse = replace(canary, live_accuracy=max(0.0, canary.live_accuracy - drop))
    before, after = assess(stable, canary, policy), assess(stable, worse, policy)
    assert SEVERITY[after.action] >= SEVERITY[before.action]
