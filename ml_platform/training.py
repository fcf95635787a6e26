"""Turning a project's table into a fitted sklearn pipeline, deterministically.

The pipeline sees only ``cfg.training_features`` (sensitive attributes stay out unless the project
opts in) and carries its own preprocessing, so the registered model takes raw feature columns and
the server needs nothing but the model. Every source of randomness is pinned to a seed and every
estimator runs single-threaded where it has the option, so the same data commit and seed give the
same model, prediction for prediction (the ``reproducible`` gate relies on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_platform.config import ProjectConfig
from ml_platform.dataset import split_features_target
from ml_platform.errors import ConfigError, ValidationFailed

_ESTIMATORS: Mapping[str, Callable[..., ClassifierMixin]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
}
# Linear models need comparable feature scales; trees are scale-invariant, so they skip the step.
_LINEAR = frozenset({"logistic_regression"})
# Parameters the platform owns: the seed comes from model.seed, threads are pinned for determinism.
_RESERVED_PARAMS = ("random_state",)
_SINGLE_THREAD = {"logistic_regression": {"n_jobs": 1}, "random_forest": {"n_jobs": 1}}


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline plus what is needed to reproduce and audit it."""

    pipeline: Pipeline = field(repr=False)
    features: tuple[str, ...]
    train_rows: int
    holdout_rows: int | None  # None when the caller split the data and did not say
    seed: int
    train_seconds: float
    estimator: str

    def predict_proba(self, X: pd.DataFrame) -> Any:
        """Class probabilities (column 1 = P(positive)) for the raw feature frame ``X``."""
        return self.pipeline.predict_proba(X[list(self.features)])


def _preprocessor(cfg: ProjectConfig) -> ColumnTransformer:
    numeric = [f for f in cfg.training_features if cfg.feature(f).is_numeric]
    categorical = [f for f in cfg.training_features if not cfg.feature(f).is_numeric]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if cfg.model.estimator in _LINEAR:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent")),
        # dense output: HistGradientBoosting rejects sparse input, and the one-hot width is small
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            ("categorical", Pipeline(categorical_steps), categorical),
        ],
        remainder="drop",  # columns outside training_features (e.g. sensitive ones) are ignored
    )


def _estimator(cfg: ProjectConfig, seed: int) -> ClassifierMixin:
    kind = cfg.model.estimator
    reserved = [p for p in _RESERVED_PARAMS if p in cfg.model.params]
    if reserved:
        raise ConfigError(f"{reserved} are set by the platform; use model.seed instead", field="model.params")
    params = {**_SINGLE_THREAD.get(kind, {}), **cfg.model.params, "random_state": seed}
    try:
        return _ESTIMATORS[kind](**params)
    except TypeError as e:
        raise ConfigError(
            f"{kind} does not accept these parameters: {e}; see the scikit-learn docs for "
            f"{_ESTIMATORS[kind].__name__}",
            field="model.params",
        ) from e


def build_pipeline(cfg: ProjectConfig, *, seed: int | None = None) -> Pipeline:
    """An unfitted preprocessing + estimator pipeline over ``cfg.training_features``."""
    chosen = cfg.model.seed if seed is None else seed
    return Pipeline([("preprocess", _preprocessor(cfg)), ("model", _estimator(cfg, chosen))])


def split_holdout(df: pd.DataFrame, cfg: ProjectConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout), stratified on the label and seeded with ``cfg.model.seed``.

    A data commit is immutable (same rows, same order), so the same commit always gives the same
    split: training and evaluation can each call this and agree on which rows are held out.
    """
    _, y = split_features_target(df, cfg)
    counts = y.value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ValidationFailed(
            f"project '{cfg.name}': a stratified holdout needs at least 2 rows of each class in "
            f"'{cfg.target}', got {counts.to_dict()} (1 = {cfg.positive_label!r}); commit more data"
        )
    train_df, holdout_df = train_test_split(
        df, test_size=cfg.model.holdout_fraction, random_state=cfg.model.seed, stratify=y
    )
    return train_df, holdout_df


def train(
    df: pd.DataFrame,
    cfg: ProjectConfig,
    *,
    seed: int | None = None,
    holdout_rows: int | None = None,
) -> TrainedModel:
    """Fit the project's pipeline on every row of ``df`` (split first with :func:`split_holdout`).

    ``seed`` overrides ``cfg.model.seed`` for the estimator only (the split stays tied to the
    data); ``holdout_rows`` is recorded for provenance since the split happened outside.
    """
    chosen = cfg.model.seed if seed is None else seed
    X, y = split_features_target(df, cfg)
    if y.nunique() < 2:
        raise ValidationFailed(
            f"project '{cfg.name}': training rows hold a single class of '{cfg.target}' "
            f"({len(y)} rows); a classifier needs both"
        )
    pipeline = build_pipeline(cfg, seed=chosen)
    started = time.perf_counter()
    pipeline.fit(X, y)
    return TrainedModel(
        pipeline=pipeline,
        features=tuple(cfg.training_features),
        train_rows=len(df),
        holdout_rows=holdout_rows,
        seed=chosen,
        train_seconds=time.perf_counter() - started,
        estimator=cfg.model.estimator,
    )
