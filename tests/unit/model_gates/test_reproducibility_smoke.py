from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from ml_platform.config import GateMode, ReproducibilitySpec, SmokeTrainSpec
from ml_platform.model_gates import check_reproducible, reproducible, smoke_train
from tests.unit.model_gates.synthetic import FEATURES, fit

SPEC = ReproducibilitySpec()


def _forest_trainer(train: pd.DataFrame, random_state: int | None):
    def train_fn():
        model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=random_state)
        model.fit(train[FEATURES], train["label"])
        return lambda X: model.predict_proba(X[FEATURES])[:, 1]

    return train_fn


def test_seeded_forest_is_reproducible(fair_data):
    train, holdout = fair_data
    v = check_reproducible(_forest_trainer(train, 0), holdout, SPEC, GateMode.BLOCKING)
    assert v.passed and v.observed == 0.0, v.message


def test_unseeded_forest_is_not_reproducible(fair_data):
    train, holdout = fair_data
    v = check_reproducible(_forest_trainer(train, None), holdout, SPEC, GateMode.BLOCKING)
    assert not v.passed and v.blocks
    assert v.observed > SPEC.tolerance and v.details["rows_differing"] > 0
    assert "exceeds the tolerance" in v.message


def test_reproducible_compares_nan_and_shapes():
    nan = float("nan")
    assert reproducible([0.1, nan], [0.1, nan], SPEC, GateMode.BLOCKING).passed
    one_sided = reproducible([0.1, nan], [0.1, 0.2], SPEC, GateMode.BLOCKING)
    assert not one_sided.passed and one_sided.observed == float("inf")
    assert not reproducible([0.1, 0.2], [0.1], SPEC, GateMode.BLOCKING).passed
    loose = ReproducibilitySpec(tolerance=1e-3)
    assert reproducible([0.1, 0.2], [0.1, 0.2005], loose, GateMode.BLOCKING).passed


def _logistic_train_fn(seen: list[int]):
    def train_fn(df: pd.DataFrame):
        seen.append(len(df))
        model = fit(FEATURES, df)
        return lambda X: model.predict_proba(X)[:, 1]

    return train_fn


def test_real_training_code_beats_the_prior_baseline_on_a_capped_sample(fair_data):
    train, holdout = fair_data
    seen: list[int] = []
    spec = SmokeTrainSpec(sample_rows=300)
    X_eval, y_eval = holdout.drop(columns="label"), holdout["label"]
    v = smoke_train(_logistic_train_fn(seen), train, X_eval, y_eval, spec, GateMode.BLOCKING)
    assert v.passed, v.message
    assert seen == [300] and v.details["train_rows"] == 300
    assert v.baseline == 0.5 and v.threshold == pytest.approx(0.5 + spec.min_margin_over_baseline)


def test_constant_model_does_not_beat_the_baseline(fair_data):
    train, holdout = fair_data

    def constant(df: pd.DataFrame):
        return lambda X: np.full(len(X), 0.3)

    spec = SmokeTrainSpec()
    v = smoke_train(constant, train, holdout, holdout["label"], spec, GateMode.BLOCKING)
    assert not v.passed and v.observed == 0.5
    assert "does not beat" in v.message


def test_accuracy_baseline_is_the_majority_rate(fair_data):
    train, holdout = fair_data
    spec = SmokeTrainSpec(metric="accuracy", min_margin_over_baseline=0.0)
    v = smoke_train(
        _logistic_train_fn([]), train, holdout, holdout["label"], spec, GateMode.BLOCKING
    )
    majority = max(holdout["label"].mean(), 1 - holdout["label"].mean())
    assert v.baseline == pytest.approx(majority)


def test_crash_in_training_is_a_failed_verdict_not_an_exception(fair_data):
    train, holdout = fair_data

    def broken(df: pd.DataFrame):
        raise KeyError("column 'incme' not found")

    v = smoke_train(broken, train, holdout, holdout["label"], SmokeTrainSpec(), GateMode.BLOCKING)
    assert not v.passed and v.blocks
    assert v.details["error_type"] == "KeyError"
    assert "KeyError" in v.message and "incme" in v.message


def test_predictions_of_the_wrong_shape_fail(fair_data):
    train, holdout = fair_data

    def two_columns(df: pd.DataFrame):
        return lambda X: np.full((len(X), 2), 0.5)

    v = smoke_train(
        two_columns, train, holdout, holdout["label"], SmokeTrainSpec(), GateMode.BLOCKING
    )
    assert not v.passed and "P(positive)" in v.message
