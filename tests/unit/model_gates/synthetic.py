"""Synthetic binary-classification data and small sklearn models for the model-gate tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

FEATURES = ["income", "tenure", "debt", "noise"]
SENSITIVE = "sex"


def make_data(n: int, seed: int, *, sensitive_drives_label: bool = False) -> pd.DataFrame:
    """Label from a linear signal; optionally the sensitive attribute dominates it."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.normal(size=n) for c in FEATURES})
    df[SENSITIVE] = rng.integers(0, 2, size=n)
    logit = 1.5 * df["income"] - 1.0 * df["debt"] + 0.5 * df["tenure"]
    if sensitive_drives_label:
        logit = 0.3 * logit + 4.0 * (df[SENSITIVE] - 0.5)
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def logistic(columns: list[str]) -> Pipeline:
    """A pipeline that sees only ``columns`` of the frame (as the platform's pipelines do)."""
    select = ColumnTransformer([("keep", "passthrough", columns)], remainder="drop")
    return Pipeline([("select", select), ("model", LogisticRegression())])


def fit(columns: list[str], df: pd.DataFrame, labels: np.ndarray | None = None) -> Pipeline:
    y = df["label"].to_numpy() if labels is None else labels
    return logistic(columns).fit(df.drop(columns="label"), y)


def scores(model: Pipeline, df: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(df.drop(columns="label"))[:, 1])
