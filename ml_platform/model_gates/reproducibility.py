"""reproducible: the same code on the same data, trained twice, predicts the same scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.config import Direction, GateMode, ReproducibilitySpec
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import ArrayLike, fmt

GATE = "reproducible"

PredictFn = Callable[[pd.DataFrame], np.ndarray]


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest elementwise gap; NaN on both sides counts as equal, NaN on one side as infinite."""
    both_nan = np.isnan(a) & np.isnan(b)
    gap = np.where(both_nan, 0.0, np.abs(a - b))
    gap = np.where(np.isnan(gap), np.inf, gap)
    return float(gap.max()) if gap.size else 0.0


def reproducible(
    predictions_a: ArrayLike,
    predictions_b: ArrayLike,
    spec: ReproducibilitySpec,
    mode: GateMode,
) -> Verdict:
    """Pass when the two runs' predictions differ by at most ``spec.tolerance`` anywhere."""
    a = np.asarray(predictions_a, dtype=np.float64)
    b = np.asarray(predictions_b, dtype=np.float64)
    if a.shape != b.shape:
        return Verdict(
            gate=GATE,
            passed=False,
            mode=mode,
            threshold=spec.tolerance,
            direction=Direction.LOWER_IS_BETTER,
            message=f"the two runs predicted different shapes: {a.shape} vs {b.shape}",
        )
    gap = max_abs_difference(a, b)
    ok = gap <= spec.tolerance
    differing = int((np.abs(a - b) > spec.tolerance).sum())
    details: dict[str, Any] = {"rows": int(a.size), "rows_differing": differing}
    verb = "within" if ok else "exceeds"
    return Verdict(
        gate=GATE,
        passed=ok,
        observed=gap,
        threshold=spec.tolerance,
        baseline=0.0,
        direction=Direction.LOWER_IS_BETTER,
        mode=mode,
        details=details,
        message=(
            f"two trainings on the same data: max |prediction difference| = {fmt(gap)} {verb} "
            f"the tolerance {fmt(spec.tolerance)} ({differing} row(s) differ)"
        ),
    )


def check_reproducible(
    train_fn: Callable[[], PredictFn],
    X_holdout: pd.DataFrame,
    spec: ReproducibilitySpec,
    mode: GateMode,
) -> Verdict:
    """Train twice with ``train_fn`` and compare the two models' holdout predictions.

    A training error propagates: a crash is ``smoke_train``'s verdict, not a reproducibility one.
    """
    first = np.asarray(train_fn()(X_holdout), dtype=np.float64)
    second = np.asarray(train_fn()(X_holdout), dtype=np.float64)
    return reproducible(first, second, spec, mode)
