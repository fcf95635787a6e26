"""smoke_train: the training code runs end to end on a tiny sample and beats a trivial model.

This is the cheapest gate, so it runs first and must never crash the run: any exception raised by
the project's training or prediction code becomes a failed verdict that names the exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

from ml_platform.config import Direction, GateMode, SmokeTrainSpec
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import ArrayLike, as_labels, as_scores, fmt
from ml_platform.model_gates._metrics import ScoreMetric, get_metric

GATE = "smoke_train"

PredictFn = Callable[[pd.DataFrame], np.ndarray]
TrainFn = Callable[[pd.DataFrame], PredictFn]


def baseline_scores(y_eval: np.ndarray) -> np.ndarray:
    """A prior-only DummyClassifier fitted on the eval labels: the strongest constant model
    (AUC 0.5, majority-class accuracy), so the margin asked of the candidate is never easier."""
    X = np.zeros((y_eval.shape[0], 1))
    dummy = DummyClassifier(strategy="prior").fit(X, y_eval)
    if 1 not in dummy.classes_:  # no positives at all: the prior of the positive class is 0
        return np.zeros(y_eval.shape[0])
    return np.asarray(dummy.predict_proba(X)[:, list(dummy.classes_).index(1)], dtype=np.float64)


def _cap(df: pd.DataFrame, rows: int) -> pd.DataFrame:
    # a smoke test that silently trains on the full data is no longer cheap; sample, seeded
    return df if len(df) <= rows else df.sample(n=rows, random_state=0)


def _train_and_score(
    train_fn: TrainFn, train: pd.DataFrame, X_eval: pd.DataFrame, n: int
) -> np.ndarray:
    predict = train_fn(train)
    return as_scores(predict(X_eval), n, what="smoke-trained model's predictions")


def _crashed(e: Exception, details: dict[str, Any], mode: GateMode) -> Verdict:
    details = {**details, "error_type": type(e).__name__, "error": str(e)}
    return Verdict(
        gate=GATE,
        passed=False,
        mode=mode,
        details=details,
        message=f"training on the smoke sample failed: {type(e).__name__}: {e}",
    )


def _bound(metric: ScoreMetric, base: float, margin: float) -> float:
    return base + margin if metric.direction is Direction.HIGHER_IS_BETTER else base - margin


def _meets(metric: ScoreMetric, value: float, bound: float) -> bool:
    return value >= bound if metric.direction is Direction.HIGHER_IS_BETTER else value <= bound


def smoke_train(
    train_fn: TrainFn,
    df_sample_train: pd.DataFrame,
    df_sample_eval: pd.DataFrame,
    y_eval: ArrayLike,
    spec: SmokeTrainSpec,
    mode: GateMode,
) -> Verdict:
    """Train on at most ``spec.sample_rows`` rows; beat the prior baseline by the margin."""
    metric = get_metric(spec.metric, field="gates.smoke_train.metric")
    y = as_labels(y_eval, what="y_eval")
    train = _cap(df_sample_train, spec.sample_rows)
    details: dict[str, Any] = {"metric": metric.name, "train_rows": len(train), "eval_rows": len(y)}
    started = time.perf_counter()
    try:
        scores = _train_and_score(train_fn, train, df_sample_eval, y.shape[0])
    except Exception as e:  # boundary: project code may raise anything; it is the verdict
        return _crashed(e, details, mode)
    details["train_seconds"] = time.perf_counter() - started
    model, base = metric.value(y, scores), metric.value(y, baseline_scores(y))
    bound = _bound(metric, base, spec.min_margin_over_baseline)
    ok = _meets(metric, model, bound)
    details.update(model=model, baseline=base, margin=spec.min_margin_over_baseline, bound=bound)
    return Verdict(
        gate=GATE,
        passed=ok,
        observed=model,
        baseline=base,
        threshold=bound,
        direction=metric.direction,
        mode=mode,
        details=details,
        message=(
            f"smoke model {metric.name} = {fmt(model)} vs prior baseline {fmt(base)}: "
            f"{'beats' if ok else 'does not beat'} it by the required margin "
            f"{fmt(spec.min_margin_over_baseline)}, i.e. {fmt(bound)} ({len(train)} training rows)"
        ),
    )
