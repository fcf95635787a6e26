"""Training: a deterministic split, a deterministic model, and only the training features used."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from ml_platform import training
from ml_platform.config import ProjectConfig, load_project
from ml_platform.errors import ConfigError, ValidationFailed
from tests.conftest import ROOT


def churn_like_frame(n: int, seed: int, *, gender_effect: float = 0.0) -> pd.DataFrame:
    """Rows with churn.yaml's columns; ``gender_effect`` makes the sensitive one drive labels."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "tenure_months": rng.integers(0, 120, n),
            "monthly_charges": rng.uniform(10, 200, n).round(2),
            "support_calls": rng.poisson(2, n),
            "data_usage_gb": rng.gamma(2.0, 20.0, n).round(1),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "contract": rng.choice(["monthly", "annual", "two_year"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "gender": rng.choice(["female", "male", "nonbinary"], n),
        }
    )
    logit = (
        0.6 * df["support_calls"]
        - 0.03 * df["tenure_months"]
        + 0.8 * (df["contract"] == "monthly")
        + gender_effect * (df["gender"] == "male")
        - 1.5
    )
    df["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def with_model(cfg: ProjectConfig, **changes: Any) -> ProjectConfig:
    return cfg.model_copy(update={"model": cfg.model.model_copy(update=changes)})


@pytest.fixture(scope="module")
def churn() -> ProjectConfig:
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    return with_model(cfg, params={"max_iter": 30, "max_leaf_nodes": 8})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return churn_like_frame(600, seed=1)


def _scores(model: training.TrainedModel, df: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(df)[:, 1])


# -- split -------------------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_complete(churn, frame) -> None:
    train_a, holdout_a = training.split_holdout(frame, churn)
    train_b, holdout_b = training.split_holdout(frame.copy(), churn)
    assert list(train_a.index) == list(train_b.index)
    assert list(holdout_a.index) == list(holdout_b.index)
    assert set(train_a.index).isdisjoint(holdout_a.index)
    assert sorted([*train_a.index, *holdout_a.index]) == list(frame.index)
    assert len(holdout_a) == pytest.approx(len(frame) * churn.model.holdout_fraction, abs=1)


def test_split_is_stratified_on_the_label(churn, frame) -> None:
    train_df, holdout_df = training.split_holdout(frame, churn)
    assert holdout_df["churned"].mean() == pytest.approx(frame["churned"].mean(), abs=0.01)
    assert train_df["churned"].mean() == pytest.approx(frame["churned"].mean(), abs=0.01)


def test_split_follows_the_configured_seed(churn, frame) -> None:
    _, holdout_a = training.split_holdout(frame, churn)
    _, holdout_b = training.split_holdout(frame, with_model(churn, seed=7))
    assert set(holdout_a.index) != set(holdout_b.index)


def test_split_refuses_a_single_class(churn, frame) -> None:
    with pytest.raises(ValidationFailed, match="at least 2 rows of each class"):
        training.split_holdout(frame.assign(churned=0), churn)


# -- pipeline ----------------------------------------------------------------------------------


def test_linear_models_scale_numeric_features_and_trees_do_not(churn) -> None:
    def has_scaler(cfg: ProjectConfig) -> bool:
        numeric = training.build_pipeline(cfg).named_steps["preprocess"].transformers[0][1]
        return any(isinstance(step, StandardScaler) for _, step in numeric.steps)

    assert has_scaler(with_model(churn, estimator="logistic_regression", params={}))
    assert not has_scaler(churn)


def test_seed_and_single_thread_are_set_on_the_estimator(churn) -> None:
    forest = training.build_pipeline(with_model(churn, estimator="random_forest", params={}))
    assert forest.named_steps["model"].random_state == churn.model.seed
    assert forest.named_steps["model"].n_jobs == 1
    boosted = training.build_pipeline(churn, seed=5).named_steps["model"]
    assert boosted.random_state == 5 and boosted.max_iter == 30


def test_random_state_in_params_is_rejected(churn) -> None:
    with pytest.raises(ConfigError, match="model.seed"):
        training.build_pipeline(with_model(churn, params={"random_state": 1}))


def test_unknown_estimator_parameter_is_a_config_error(churn) -> None:
    with pytest.raises(ConfigError, match="does not accept"):
        training.build_pipeline(with_model(churn, params={"max_itr": 30}))


# -- training ----------------------------------------------------------------------------------


def test_same_data_and_seed_give_identical_predictions(churn, frame) -> None:
    train_df, holdout_df = training.split_holdout(frame, churn)
    first = training.train(train_df, churn, holdout_rows=len(holdout_df))
    second = training.train(train_df, churn)
    assert np.array_equal(_scores(first, holdout_df), _scores(second, holdout_df))
    assert first.train_rows == len(train_df) and first.holdout_rows == len(holdout_df)
    assert first.seed == churn.model.seed and first.train_seconds > 0


def test_seed_reaches_the_estimator(churn, frame) -> None:
    forest = with_model(churn, estimator="random_forest", params={"n_estimators": 10})
    a, b = (training.train(frame, forest, seed=s) for s in (1, 2))
    again = training.train(frame, forest, seed=1)
    assert np.array_equal(_scores(a, frame), _scores(again, frame))
    assert not np.array_equal(_scores(a, frame), _scores(b, frame))


def test_different_data_gives_a_different_model(churn, frame) -> None:
    other = churn_like_frame(600, seed=2)
    a, b = training.train(frame, churn), training.train(other, churn)
    assert not np.array_equal(_scores(a, frame), _scores(b, frame))


def test_sensitive_attribute_is_not_a_model_input(churn) -> None:
    # gender drives the labels strongly, so a model that used it would react to flipping it
    df = churn_like_frame(800, seed=3, gender_effect=3.0)
    flipped = df.assign(gender=np.where(df["gender"] == "male", "female", "male"))
    blind = training.train(df, churn)
    assert "gender" not in blind.features
    assert list(blind.pipeline.feature_names_in_) == churn.training_features
    assert np.array_equal(_scores(blind, df), _scores(blind, flipped))
    # the same check would catch a leak: a model allowed to see gender does react
    aware_cfg = with_model(churn, use_sensitive_features=True)
    aware = training.train(df, aware_cfg)
    assert "gender" in aware.features
    assert not np.array_equal(_scores(aware, df), _scores(aware, flipped))


def test_unknown_category_and_missing_values_are_handled(churn, frame) -> None:
    model = training.train(frame, churn)
    probe = frame.head(3).copy()
    probe.loc[probe.index[0], "plan"] = "enterprise"  # never seen in training
    probe.loc[probe.index[1], "monthly_charges"] = np.nan
    probe.loc[probe.index[2], "region"] = None
    scores = _scores(model, probe)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_training_on_a_single_class_fails_clearly(churn, frame) -> None:
    with pytest.raises(ValidationFailed, match="single class"):
        training.train(frame.assign(churned=1), churn)
