"""Input checks and number formatting shared by the model gates."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ml_platform.errors import MLPlatformError

ArrayLike: TypeAlias = np.ndarray | pd.Series | list[Any]


def fmt(x: float | None) -> str:
    """Four significant digits: enough to compare, short enough for a one-line message."""
    return "n/a" if x is None else f"{x:.4g}"


def as_labels(y: ArrayLike, *, what: str = "y_true") -> np.ndarray:
    """Binary 0/1 labels as int8; anything else is the caller's mapping bug, said loudly."""
    arr: np.ndarray = np.asarray(y)
    if arr.ndim != 1:
        raise MLPlatformError(f"{what} must be one-dimensional, got shape {arr.shape}")
    values = set(np.unique(arr).tolist())  # bools compare equal to 0/1
    if not values <= {0, 1}:
        raise MLPlatformError(
            f"{what} must hold binary 0/1 labels (map the positive label to 1 first), "
            f"got values {sorted(map(str, values))[:5]}"
        )
    return arr.astype(np.int8)


def as_scores(s: ArrayLike, n: int, *, what: str) -> np.ndarray:
    """P(positive) scores as a finite 1-D float array of length ``n``."""
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        raise MLPlatformError(
            f"{what} has two columns; pass P(positive) only (predict_proba(X)[:, 1])"
        )
    if arr.shape != (n,):
        raise MLPlatformError(f"{what} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise MLPlatformError(f"{what} contains {int((~np.isfinite(arr)).sum())} non-finite values")
    return arr
