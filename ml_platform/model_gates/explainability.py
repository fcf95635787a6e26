"""explainability: permutation importance on the holdout; sensitive or forbidden features may
not drive the model.

Permutation importance (not the model's own importances) because it works for any estimator or
bare predict function and measures what the holdout score actually loses without a feature. A
feature counts as "in the top k" only if permuting it costs score: with few features, unused
columns (importance exactly 0) would otherwise fill the top k by tie order alone.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score

from ml_platform.config import Direction, ExplainabilitySpec, GateMode
from ml_platform.errors import MLPlatformError
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import ArrayLike, as_labels

GATE = "explainability"

PredictFn = Callable[[pd.DataFrame], np.ndarray]


class _ScoresOnly:
    """Lets sklearn's permutation_importance call a bare P(positive) function.

    sklearn requires a ``fit`` attribute on the estimator it is given; this one is already
    trained and refuses to be refitted.
    """

    def __init__(self, predict: PredictFn) -> None:
        self.scores = predict

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> _ScoresOnly:
        raise MLPlatformError("a wrapped predict function cannot be refitted")


def _auc_scorer(est: _ScoresOnly, X: pd.DataFrame, y: np.ndarray) -> float:
    return float(roc_auc_score(y, np.asarray(est.scores(X), dtype=np.float64)))


def _as_predict(estimator_or_predict: Any) -> PredictFn:
    if hasattr(estimator_or_predict, "predict_proba"):
        classes = list(getattr(estimator_or_predict, "classes_", [0, 1]))
        column = classes.index(1) if 1 in classes else len(classes) - 1
        return lambda X: np.asarray(estimator_or_predict.predict_proba(X))[:, column]
    if callable(estimator_or_predict):
        return estimator_or_predict
    raise MLPlatformError(
        f"expected a fitted classifier with predict_proba or a predict function, "
        f"got {type(estimator_or_predict).__name__}"
    )


def _ranking(result: Any, columns: list[str]) -> list[dict[str, Any]]:
    order = np.argsort(-result.importances_mean, kind="stable")
    return [
        {
            "rank": r + 1,
            "feature": columns[i],
            "importance_mean": float(result.importances_mean[i]),
            "importance_std": float(result.importances_std[i]),
        }
        for r, i in enumerate(order)
    ]


def _sample(
    X: pd.DataFrame, y: np.ndarray, rows: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    if len(X) <= rows:
        return X, y
    idx = np.random.default_rng(seed).choice(len(X), size=rows, replace=False)
    return X.iloc[idx], y[idx]


def _flagged(ranking: list[dict[str, Any]], watched: set[str], top_k: int) -> list[dict[str, Any]]:
    return [r for r in ranking[:top_k] if r["feature"] in watched and r["importance_mean"] > 0]


def _importances(
    estimator_or_predict: Any, X: pd.DataFrame, y: np.ndarray, spec: ExplainabilitySpec, seed: int
) -> tuple[list[dict[str, Any]], int]:
    X_s, y_s = _sample(X.reset_index(drop=True), y, spec.max_rows, seed)
    # n_jobs=1: gates run next to other work; the repeats are cheap at max_rows rows
    result = permutation_importance(
        _ScoresOnly(_as_predict(estimator_or_predict)),
        X_s,
        y_s,
        scoring=_auc_scorer,
        n_repeats=spec.n_repeats,
        random_state=seed,
        n_jobs=1,
    )
    return _ranking(result, [str(c) for c in X.columns]), len(X_s)


def _message(ranking: list[dict[str, Any]], flagged: list[str], top_k: int) -> str:
    top = ", ".join(f"{r['feature']} ({r['importance_mean']:.3g})" for r in ranking[:top_k])
    verdict = (
        f"sensitive/forbidden feature(s) among them: {flagged}"
        if flagged
        else "no sensitive or forbidden feature among them"
    )
    return f"top {top_k} by permutation importance (AUC drop): {top}; {verdict}"


def explainability(
    estimator_or_predict: Any,
    X: pd.DataFrame,
    y: ArrayLike,
    spec: ExplainabilitySpec,
    sensitive: list[str],
    mode: GateMode,
    *,
    seed: int,
) -> Verdict:
    """Fail when a sensitive attribute or forbidden feature is among the top_k by importance."""
    ranking, rows = _importances(estimator_or_predict, X, as_labels(y), spec, seed)
    watched = set(sensitive) | set(spec.forbidden_features)
    flagged = [r["feature"] for r in _flagged(ranking, watched, spec.top_k)]
    return Verdict(
        gate=GATE,
        passed=not flagged,
        mode=mode,
        direction=Direction.LOWER_IS_BETTER,
        observed=float(len(flagged)),
        threshold=0.0,
        message=_message(ranking, flagged, spec.top_k),
        details={
            "ranking": ranking,
            "flagged": flagged,
            "watched": sorted(watched),
            "top_k": spec.top_k,
            "rows": rows,
            "n_repeats": spec.n_repeats,
            "scoring": "roc_auc",
            "seed": seed,
        },
    )


def _row(r: dict[str, Any], flagged: set[str], scale: float) -> str:
    css = ' class="flagged"' if r["feature"] in flagged else ""
    width = max(0.0, r["importance_mean"]) / scale * 300
    return (
        f"<tr{css}><td>{r['rank']}</td><td>{html.escape(r['feature'])}</td>"
        f"<td>{r['importance_mean']:.4f}</td>"
        f'<td><div class="bar" style="width:{width:.0f}px"></div></td></tr>'
    )


def _html(verdict: Verdict) -> str:
    ranking = verdict.details["ranking"]
    flagged = set(verdict.details["flagged"])
    # bars are relative to the most important feature; all-zero importances draw no bars
    scale = max((r["importance_mean"] for r in ranking), default=0.0) or 1.0
    rows = "\n".join(_row(r, flagged, scale) for r in ranking)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"/><title>Permutation importance'
        "</title><style>.bar{background:#4a7ebb;height:12px}.flagged td{color:#b00}</style>"
        f"</head><body><h1>Permutation importance</h1><p>{html.escape(verdict.message)}</p>"
        "<table><tr><th>rank</th><th>feature</th><th>AUC drop</th><th></th></tr>\n"
        f"{rows}</table></body></html>\n"
    )


def write_importance_report(result: Verdict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``importance.json`` and ``importance.html`` for an explainability verdict."""
    if "ranking" not in result.details:
        raise MLPlatformError(f"verdict of gate '{result.gate}' has no importance ranking")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "importance.json", out / "importance.html"
    json_path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    html_path.write_text(_html(result), encoding="utf-8")
    return json_path, html_path
