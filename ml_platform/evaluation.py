"""Holdout metrics for a candidate and the ``metric_thresholds`` gate over them.

Class labels come from a 0.5 cut on P(positive) with ``>=``, the same rule the bootstrap metrics
of the regression gate use (``model_gates._metrics``), so a metric means one thing everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ml_platform.config import ProjectConfig
from ml_platform.dataset import split_features_target
from ml_platform.errors import MLPlatformError, ValidationFailed
from ml_platform.gates import MetricThreshold, Verdict, combine

DECISION_THRESHOLD = 0.5
EVALUATION_FILE = "evaluation.json"

# A fitted sklearn estimator/pipeline, a registry pyfunc model (predicts class probabilities),
# or a function from the feature frame to P(positive) or to both class probabilities.
ScoreSource = Any


@dataclass(frozen=True)
class EvaluationResult:
    """Holdout metrics; the per-row scores and labels are kept for gates but out of the repr."""

    metrics: Mapping[str, float]
    scores: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    decision_threshold: float = DECISION_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "decision_threshold": self.decision_threshold}


def _raw_scores(model: ScoreSource, X: pd.DataFrame) -> Any:
    if hasattr(model, "predict_proba"):  # sklearn estimators and pipelines
        return model.predict_proba(X)
    if callable(model):
        return model(X)
    if hasattr(model, "predict"):  # the registry's pyfunc models predict probabilities
        return model.predict(X)
    raise MLPlatformError(
        f"cannot score with a {type(model).__name__}: pass a fitted classifier, a pyfunc model "
        "or a function from the feature frame to P(positive)"
    )


def _positive_scores(model: ScoreSource, X: pd.DataFrame) -> np.ndarray:
    """P(positive) per row from a classifier, a pyfunc model or a function."""
    raw = _raw_scores(model, X)
    arr = np.asarray(raw, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr[:, 1]  # labels are mapped to 0/1 before fitting, so column 1 is the positive
    if arr.shape != (len(X),):
        raise ValidationFailed(
            f"the model returned scores of shape {np.shape(raw)} for {len(X)} rows; expected "
            "P(positive) per row, shape (n,) or (n, 2)"
        )
    if not (np.isfinite(arr).all() and ((arr >= 0) & (arr <= 1)).all()):
        raise ValidationFailed("the model returned scores outside [0, 1] or non-finite values")
    return arr


def score_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every holdout metric for 0/1 labels ``y`` and P(positive) ``scores``."""
    if len(np.unique(y)) < 2:
        raise ValidationFailed(
            f"the holdout holds a single class ({len(y)} rows); ROC AUC needs both classes"
        )
    pred = (scores >= DECISION_THRESHOLD).astype(np.int8)
    return {
        "roc_auc": float(skm.roc_auc_score(y, scores)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, scores, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, scores)),
        "positive_rate": float(pred.mean()),  # share of rows predicted positive
        "n_rows": float(len(y)),
    }


def evaluate(
    model_or_predict_proba: ScoreSource, holdout_df: pd.DataFrame, cfg: ProjectConfig
) -> EvaluationResult:
    """Score the holdout rows (raw feature columns) and compute every metric."""
    X, y = split_features_target(holdout_df, cfg)
    labels = y.to_numpy(dtype=np.int8)
    scores = _positive_scores(model_or_predict_proba, X)
    return EvaluationResult(metrics=score_metrics(labels, scores), scores=scores, labels=labels)


def threshold_verdict(metrics: Mapping[str, float], cfg: ProjectConfig) -> Verdict:
    """The ``metric_thresholds`` gate: every configured bound; a missing metric fails its bound."""
    parts = [MetricThreshold.from_spec(spec).evaluate(metrics) for spec in cfg.thresholds]
    return combine("metric_thresholds", parts, cfg.gates.mode("metric_thresholds"))


def write_evaluation(result: EvaluationResult, out_dir: str | Path) -> Path:
    """Write ``out_dir/evaluation.json``: metrics and decision threshold, no per-row data."""
    path = Path(out_dir) / EVALUATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
