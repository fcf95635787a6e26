"""latency_budget: p50/p95 of single-row and batch predictions against the configured budgets.

The clock is a parameter so tests drive it with a fake and assert exact percentiles instead of
timing a real model on a shared machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.config import Direction, GateMode, LatencySpec
from ml_platform.errors import MLPlatformError
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import fmt

GATE = "latency_budget"

Clock = Callable[[], float]


def _timed_ms(
    predict: Callable[[pd.DataFrame], Any], batches: list[pd.DataFrame], clock: Clock
) -> np.ndarray:
    out = np.empty(len(batches))
    for i, batch in enumerate(batches):
        start = clock()
        predict(batch)
        out[i] = (clock() - start) * 1000.0
    return out


def _batch(X: pd.DataFrame, rows: int) -> pd.DataFrame:
    # a holdout smaller than the batch size is tiled, so the batch really has `rows` rows
    reps = -(-rows // len(X))
    return pd.concat([X] * reps, ignore_index=True).iloc[:rows] if reps > 1 else X.iloc[:rows]


def _summary(ms: np.ndarray) -> dict[str, float]:
    p50, p95 = np.percentile(ms, [50, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "max_ms": float(ms.max())}


def latency_budget(
    predict: Callable[[pd.DataFrame], Any],
    X: pd.DataFrame,
    spec: LatencySpec,
    mode: GateMode,
    *,
    clock: Clock = time.perf_counter,
) -> Verdict:
    """Time ``spec.repeats`` single-row and batch calls after one warm-up call of each."""
    if len(X) == 0:
        raise MLPlatformError("latency_budget needs at least one row of X")
    singles = [X.iloc[[i % len(X)]] for i in range(spec.repeats)]
    batch = _batch(X, spec.batch_rows)
    predict(singles[0])  # warm-up: lazy imports, caches and first-call allocation are not latency
    predict(batch)
    single = _summary(_timed_ms(predict, singles, clock))
    batched = _summary(_timed_ms(predict, [batch] * spec.repeats, clock))
    single_ok = single["p95_ms"] <= spec.single_row_p95_ms
    batch_ok = batched["p95_ms"] <= spec.batch_p95_ms
    details = {
        "single_row": single,
        "batch": batched,
        "batch_rows": len(batch),
        "repeats": spec.repeats,
        "single_row_p95_budget_ms": spec.single_row_p95_ms,
        "batch_p95_budget_ms": spec.batch_p95_ms,
    }
    return Verdict(
        gate=GATE,
        passed=single_ok and batch_ok,
        observed=single["p95_ms"],
        threshold=spec.single_row_p95_ms,
        direction=Direction.LOWER_IS_BETTER,
        mode=mode,
        details=details,
        message=(
            f"single-row p95 {fmt(single['p95_ms'])} ms "
            f"{'<=' if single_ok else '>'} {fmt(spec.single_row_p95_ms)} ms; "
            f"batch of {len(batch)} p95 {fmt(batched['p95_ms'])} ms "
            f"{'<=' if batch_ok else '>'} {fmt(spec.batch_p95_ms)} ms"
        ),
    )
