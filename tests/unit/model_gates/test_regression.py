from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, roc_auc_score

from ml_platform.config import Direction, GateMode, RegressionSpec
from ml_platform.errors import ConfigError
from ml_platform.model_gates import no_regression_vs_champion
from ml_platform.model_gates._metrics import METRICS, paired_bootstrap, resample_counts
from tests.unit.model_gates.synthetic import FEATURES, fit, scores

SPEC = RegressionSpec(bootstrap_samples=200)


def test_shuffled_label_candidate_fails_against_real_champion(fair_data):
    train, holdout = fair_data
    champion = fit(FEATURES, train)
    shuffled = np.random.default_rng(0).permutation(train["label"].to_numpy())
    candidate = fit(FEATURES, train, labels=shuffled)
    y = holdout["label"].to_numpy()
    v = no_regression_vs_champion(
        y, scores(candidate, holdout), scores(champion, holdout), SPEC, GateMode.BLOCKING
    )
    assert not v.passed and v.blocks
    assert v.baseline == pytest.approx(roc_auc_score(y, scores(champion, holdout)))
    assert v.observed == pytest.approx(roc_auc_score(y, scores(candidate, holdout)))
    assert v.threshold == pytest.approx(v.baseline - SPEC.tolerance)
    assert v.details["ci_high"] < 0  # the whole interval says "worse"
    for word in ("roc_auc", "candidate", "champion", "CI", f"{v.threshold:.4g}"):
        assert word in v.message


def test_retrained_champion_passes(fair_data):
    train, holdout = fair_data
    champion, candidate = fit(FEATURES, train), fit(FEATURES[:3], train)
    y = holdout["label"].to_numpy()
    v = no_regression_vs_champion(
        y, scores(candidate, holdout), scores(champion, holdout), SPEC, GateMode.BLOCKING
    )
    assert v.passed, v.message
    assert v.details["ci_low"] <= v.details["difference"] <= v.details["ci_high"]
    assert v.direction is Direction.HIGHER_IS_BETTER


def test_no_champion_passes_with_explicit_message():
    v = no_regression_vs_champion([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], None, SPEC, GateMode.WARNING)
    assert v.passed and v.message == "no champion yet: judged on absolute thresholds alone"
    assert v.observed == 1.0 and v.baseline is None and v.mode is GateMode.WARNING


@pytest.mark.parametrize("metric", ["log_loss", "brier"])
def test_lower_is_better_metrics_judge_the_right_way(metric):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good = np.clip(0.8 * y + 0.1 + rng.normal(0, 0.05, 2000), 0.01, 0.99)
    bad = np.clip(0.2 * y + 0.4 + rng.normal(0, 0.05, 2000), 0.01, 0.99)
    spec = RegressionSpec(metric=metric, tolerance=0.0, bootstrap_samples=50)
    worse = no_regression_vs_champion(y, bad, good, spec, GateMode.BLOCKING)
    better = no_regression_vs_champion(y, good, bad, spec, GateMode.BLOCKING)
    assert not worse.passed and better.passed
    assert worse.direction is Direction.LOWER_IS_BETTER
    assert worse.threshold == pytest.approx(worse.baseline)  # tolerance 0: bound is the champion


def test_bootstrap_interval_contains_true_difference():
    # candidate right with prob 0.9, champion with prob 0.8, independently: true gap 0.10
    rng = np.random.default_rng(7)
    n = 4000
    y = rng.integers(0, 2, n)
    cand = np.where(rng.random(n) < 0.9, y, 1 - y).astype(float)
    champ = np.where(rng.random(n) < 0.8, y, 1 - y).astype(float)
    spec = RegressionSpec(metric="accuracy", bootstrap_samples=400, confidence=0.95)
    v = no_regression_vs_champion(y, cand, champ, spec, GateMode.BLOCKING, seed=3)
    low, high = v.details["ci_low"], v.details["ci_high"]
    assert low < 0.10 < high
    assert 0.02 < high - low < 0.06  # sd of the paired gap is ~0.008: width ~0.03


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    y, a, b = rng.integers(0, 2, 500), rng.random(500), rng.random(500)
    one = no_regression_vs_champion(y, a, b, SPEC, GateMode.BLOCKING, seed=5).details
    two = no_regression_vs_champion(y, a, b, SPEC, GateMode.BLOCKING, seed=5).details
    other = no_regression_vs_champion(y, a, b, SPEC, GateMode.BLOCKING, seed=6).details
    assert one["ci_low"] == two["ci_low"] and one["ci_low"] != other["ci_low"]


def _sklearn(metric: str, y: np.ndarray, s: np.ndarray) -> float:
    return {
        "roc_auc": lambda: roc_auc_score(y, s),
        "accuracy": lambda: accuracy_score(y, s >= 0.5),
        "f1": lambda: f1_score(y, s >= 0.5),
        "log_loss": lambda: log_loss(y, s),
        "brier": lambda: brier_score_loss(y, s),
    }[metric]()


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_weighted_metrics_equal_sklearn_on_the_resampled_rows(metric):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1500)
    s = np.round(np.clip(0.3 * y + 0.7 * rng.random(1500), 0, 1), 2)  # rounded: many ties
    w = resample_counts(rng, 3, 1500)
    got = METRICS[metric].weighted(w, y, s)
    for row in range(3):
        rows = np.repeat(np.arange(1500), w[row].astype(int))
        assert got[row] == pytest.approx(_sklearn(metric, y[rows], s[rows]), abs=1e-12)
    assert METRICS[metric].value(y, s) == pytest.approx(_sklearn(metric, y, s), abs=1e-12)


def test_auc_bootstrap_of_100k_rows_is_fast():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100_000)
    a, b = rng.random(100_000) + 0.2 * y, rng.random(100_000)
    started = time.perf_counter()
    diffs = paired_bootstrap(METRICS["roc_auc"], y, a, b, n_samples=200, seed=0)
    assert time.perf_counter() - started < 10.0
    assert diffs.shape == (200,)


def test_unknown_metric_and_contradicting_direction_are_config_errors():
    y, s = [0, 1], [0.2, 0.8]
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        no_regression_vs_champion(y, s, s, RegressionSpec(metric="auc"), GateMode.BLOCKING)
    spec = RegressionSpec(metric="log_loss", direction=Direction.HIGHER_IS_BETTER)
    with pytest.raises(ConfigError, match="contradicts metric 'log_loss'"):
        no_regression_vs_champion(y, s, s, spec, GateMode.BLOCKING)
