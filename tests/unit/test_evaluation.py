"""Evaluation: metrics on a hand-checked example and the metric_thresholds gate."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from ml_platform import evaluation
from ml_platform.config import (
    Direction,
    GateMode,
    GatesSpec,
    MetricThresholdSpec,
    ProjectConfig,
    load_project,
)
from ml_platform.errors import MLPlatformError, ValidationFailed
from tests.conftest import ROOT

# Four rows: negatives score 0.1 and 0.6, positives 0.4 and 0.9.
#   ROC AUC: 3 of the 4 (positive, negative) pairs are ordered right -> 0.75
#   labels at >= 0.5: [0, 1, 0, 1] -> one TP, one FP, one FN, one TN
#   Brier: (0.1² + 0.6² + 0.6² + 0.1²) / 4 = 0.185
#   log loss: -(ln 0.9 + ln 0.4 + ln 0.4 + ln 0.9) / 4
LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.6, 0.4, 0.9]
EXPECTED = {
    "roc_auc": 0.75,
    "accuracy": 0.5,
    "precision": 0.5,
    "recall": 0.5,
    "f1": 0.5,
    "brier": 0.185,
    "log_loss": -(2 * math.log(0.9) + 2 * math.log(0.4)) / 4,
    "positive_rate": 0.5,
    "n_rows": 4.0,
}


@pytest.fixture(scope="module")
def churn() -> ProjectConfig:
    return load_project(ROOT / "projects" / "churn.yaml")


def tiny_holdout(cfg: ProjectConfig, labels: Sequence[object]) -> pd.DataFrame:
    """Four rows with every feature column; ``age`` doubles as a row id for the fake model."""
    n = len(labels)
    df = pd.DataFrame({f: ["x"] * n if not cfg.feature(f).is_numeric else [0] * n for f in cfg.feature_names})
    df["age"] = range(n)
    df[cfg.target] = labels
    return df


def score_by_age(X: pd.DataFrame) -> np.ndarray:
    return np.asarray(SCORES)[X["age"].to_numpy()]


class TwoColumnModel:
    """Answers like a fitted sklearn classifier: P(class 0), P(class 1)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = score_by_age(X)
        return np.column_stack([1 - p, p])


def test_metrics_on_a_known_example(churn) -> None:
    result = evaluation.evaluate(score_by_age, tiny_holdout(churn, LABELS), churn)
    assert set(result.metrics) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert result.metrics[name] == pytest.approx(value), name
    assert np.array_equal(result.labels, LABELS) and np.allclose(result.scores, SCORES)


def test_predict_proba_models_and_functions_agree(churn) -> None:
    df = tiny_holdout(churn, LABELS)
    via_model = evaluation.evaluate(TwoColumnModel(), df, churn)
    via_function = evaluation.evaluate(score_by_age, df, churn)
    assert dict(via_model.metrics) == dict(via_function.metrics)


def test_repr_leaves_out_per_row_arrays(churn) -> None:
    result = evaluation.evaluate(score_by_age, tiny_holdout(churn, LABELS), churn)
    assert "roc_auc" in repr(result) and "scores" not in repr(result) and "labels" not in repr(result)


def test_positive_label_is_mapped_before_scoring(churn) -> None:
    cfg = churn.model_copy(update={"positive_label": "yes"})
    df = tiny_holdout(cfg, ["no", "no", "yes", "yes"])
    result = evaluation.evaluate(score_by_age, df, cfg)
    assert result.metrics["roc_auc"] == pytest.approx(0.75)


def test_object_without_a_scoring_method_is_refused(churn) -> None:
    with pytest.raises(MLPlatformError, match="cannot score with a str"):
        evaluation.evaluate("model.pkl", tiny_holdout(churn, LABELS), churn)


def test_single_class_holdout_fails_clearly(churn) -> None:
    with pytest.raises(ValidationFailed, match="single class"):
        evaluation.evaluate(score_by_age, tiny_holdout(churn, [1, 1, 1, 1]), churn)


@pytest.mark.parametrize(
    ("scores", "match"),
    [(np.zeros((4, 3)), r"shape \(4, 3\)"), (np.array([0.1, 0.2, 1.5, 0.3]), r"outside \[0, 1\]")],
)
def test_malformed_scores_fail_clearly(churn, scores, match) -> None:
    with pytest.raises(ValidationFailed, match=match):
        evaluation.evaluate(lambda X: scores, tiny_holdout(churn, LABELS), churn)


# -- threshold verdict -------------------------------------------------------------------------
# churn.yaml: roc_auc >= 0.75, accuracy >= 0.70, brier <= 0.20 (lower is better)

GOOD = {"roc_auc": 0.80, "accuracy": 0.75, "brier": 0.15}


def test_all_bounds_met_passes(churn) -> None:
    verdict = evaluation.threshold_verdict(GOOD, churn)
    assert verdict.passed and verdict.gate == "metric_thresholds"
    assert verdict.mode is GateMode.BLOCKING and not verdict.blocks
    assert len(verdict.details["bounds"]) == 3


def test_higher_is_better_metric_below_its_bound_fails(churn) -> None:
    verdict = evaluation.threshold_verdict({**GOOD, "roc_auc": 0.70}, churn)
    assert not verdict.passed and verdict.blocks
    assert verdict.observed == 0.70 and verdict.threshold == 0.75
    assert verdict.direction is Direction.HIGHER_IS_BETTER
    assert "roc_auc = 0.7 fails the bound >= 0.75" in verdict.message


def test_lower_is_better_metric_above_its_bound_fails(churn) -> None:
    verdict = evaluation.threshold_verdict({**GOOD, "brier": 0.25}, churn)
    assert not verdict.passed
    assert verdict.direction is Direction.LOWER_IS_BETTER
    assert "brier = 0.25 fails the bound <= 0.2" in verdict.message
    # the same value on the right side of the bound passes
    assert evaluation.threshold_verdict({**GOOD, "brier": 0.20}, churn).passed


def test_missing_metric_fails_and_names_it(churn) -> None:
    verdict = evaluation.threshold_verdict({"roc_auc": 0.9, "brier": 0.1}, churn)
    assert not verdict.passed
    assert "metric 'accuracy' was not computed" in verdict.message
    assert "brier" in verdict.message  # lists what is available


def test_gate_mode_comes_from_the_project(churn) -> None:
    cfg = churn.model_copy(update={"gates": GatesSpec(modes={"metric_thresholds": GateMode.WARNING})})
    verdict = evaluation.threshold_verdict({**GOOD, "roc_auc": 0.5}, cfg)
    assert not verdict.passed and verdict.mode is GateMode.WARNING and not verdict.blocks


def test_no_thresholds_configured_passes(churn) -> None:
    cfg = churn.model_copy(update={"thresholds": []})
    assert evaluation.threshold_verdict({}, cfg).passed


def test_real_evaluation_feeds_the_gate(churn) -> None:
    cfg = churn.model_copy(update={"thresholds": [MetricThresholdSpec(metric="f1", threshold=0.6)]})
    result = evaluation.evaluate(score_by_age, tiny_holdout(cfg, LABELS), cfg)
    verdict = evaluation.threshold_verdict(result.metrics, cfg)
    assert not verdict.passed and verdict.observed == pytest.approx(0.5)


def test_write_evaluation_round_trips_metrics(churn, tmp_path) -> None:
    result = evaluation.evaluate(score_by_age, tiny_holdout(churn, LABELS), churn)
    path = evaluation.write_evaluation(result, tmp_path / "reports")
    data = json.loads(path.read_text())
    assert path.name == "evaluation.json"
    assert data["metrics"] == pytest.approx(EXPECTED)
    assert data["decision_threshold"] == 0.5 and "scores" not in data
