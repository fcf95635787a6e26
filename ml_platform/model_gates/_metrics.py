"""Holdout metrics computed under bootstrap weights, all resamples at once.

A bootstrap resample is a vector of counts (how often each holdout row was drawn). Every metric
here is written as a function of such count vectors, stacked as a ``(b, n)`` matrix, so a whole
chunk of resamples costs a few matrix products instead of ``b`` calls into sklearn. The point
estimate is the same function with all counts equal to one, so estimate and interval can never
disagree about what the metric means. ROC AUC uses the rank (Mann-Whitney) form: sort once, sum
positive and negative counts per distinct score, and count weighted pairs with a cumulative sum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml_platform.config import Direction
from ml_platform.errors import ConfigError

# weights (b, n), labels (n,) in {0, 1}, scores (n,) in [0, 1]  ->  metric per resample (b,)
WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

_EPS = 1e-15  # sklearn's log_loss clipping, so our values match sklearn's
_CELLS_PER_CHUNK = 2_500_000  # ~20 MB of float64 counts per chunk of resamples


@dataclass(frozen=True)
class ScoreMetric:
    name: str
    direction: Direction
    weighted: WeightedMetric

    def value(self, y: np.ndarray, scores: np.ndarray) -> float:
        return float(self.weighted(np.ones((1, y.shape[0])), y, scores)[0])


def _mean(w: np.ndarray, per_row: np.ndarray) -> np.ndarray:
    return np.asarray((w @ per_row) / w.sum(axis=1))


def _accuracy(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return _mean(w, ((s >= 0.5) == (y == 1)).astype(np.float64))


def _brier(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return _mean(w, (s - y) ** 2)


def _log_loss(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    p = np.clip(s, _EPS, 1 - _EPS)
    return _mean(w, -(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _f1(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    pred, pos = s >= 0.5, y == 1
    tp = w @ (pred & pos).astype(np.float64)
    fp = w @ (pred & ~pos).astype(np.float64)
    fn = w @ (~pred & pos).astype(np.float64)
    denom = 2 * tp + fp + fn
    # sklearn's zero_division default: F1 is 0 when there are no positives at all
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _roc_auc(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    w_sorted = w[:, order]
    pos = w_sorted * (y[order] == 1)
    neg = w_sorted - pos
    if (s_sorted[1:] == s_sorted[:-1]).any():  # tied scores: one column per distinct score
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    # a tie between a positive and a negative counts one half (Mann-Whitney U)
    pairs = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    return np.divide(pairs, total, out=np.full_like(pairs, np.nan), where=total > 0)


METRICS: dict[str, ScoreMetric] = {
    "roc_auc": ScoreMetric("roc_auc", Direction.HIGHER_IS_BETTER, _roc_auc),
    "accuracy": ScoreMetric("accuracy", Direction.HIGHER_IS_BETTER, _accuracy),
    "f1": ScoreMetric("f1", Direction.HIGHER_IS_BETTER, _f1),
    "log_loss": ScoreMetric("log_loss", Direction.LOWER_IS_BETTER, _log_loss),
    "brier": ScoreMetric("brier", Direction.LOWER_IS_BETTER, _brier),
}


def get_metric(name: str, *, field: str) -> ScoreMetric:
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric '{name}'; supported: {sorted(METRICS)}", field=field
        ) from None


def resample_counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """``b`` bootstrap resamples of ``n`` rows as a (b, n) matrix of draw counts."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def paired_bootstrap(
    metric: ScoreMetric,
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    *,
    n_samples: int,
    seed: int,
) -> np.ndarray:
    """Candidate-minus-champion metric differences on the same resamples (paired).

    Resamples where the metric is undefined (e.g. a single class for AUC) are dropped.
    """
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    chunk = max(1, _CELLS_PER_CHUNK // max(n, 1))
    diffs: list[np.ndarray] = []
    for start in range(0, n_samples, chunk):
        w = resample_counts(rng, min(chunk, n_samples - start), n)
        diffs.append(metric.weighted(w, y, candidate) - metric.weighted(w, y, champion))
    out = np.concatenate(diffs) if diffs else np.empty(0)
    return out[np.isfinite(out)]
