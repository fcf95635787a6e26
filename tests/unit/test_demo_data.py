"""Demo data generators follow their project files; corruption helpers are pure and seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from ml_platform import demo_data as dd
from ml_platform.config import load_project
from ml_platform.validation import validate_frame

ROOT = Path(__file__).resolve().parents[2]
CHURN = load_project(ROOT / "projects" / "churn.yaml")
CREDIT = load_project(ROOT / "projects" / "credit.yaml")


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return dd.generate_churn(6000, seed=7)


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return dd.generate_credit(6000, seed=7)


def _holdout_auc(df: pd.DataFrame, features: list[str], target: str) -> float:
    train, test = df.iloc[:4000], df.iloc[4000:]
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, random_state=0)
    model.fit(train[features], train[target])
    return float(roc_auc_score(test[target], model.predict_proba(test[features])[:, 1]))


def test_churn_matches_its_project_file(churn: pd.DataFrame) -> None:
    assert list(churn.columns) == [*CHURN.feature_names, CHURN.target]
    assert validate_frame(churn, CHURN).passed
    assert 0.22 <= churn["churned"].mean() <= 0.28


def test_churn_is_learnable_and_gender_is_weak(churn: pd.DataFrame) -> None:
    auc = _holdout_auc(churn, CHURN.training_features, "churned")
    assert 0.78 <= auc <= 0.92
    by_gender = churn.groupby("gender", observed=True)["churned"].mean()
    assert by_gender["female"] - by_gender["male"] < 0.05


def test_credit_matches_its_project_file(credit: pd.DataFrame) -> None:
    assert CREDIT.sensitive_attributes == ["age_band"]
    assert list(credit.columns) == [*CREDIT.feature_names, CREDIT.target]
    assert validate_frame(credit, CREDIT).passed
    assert 0.15 <= credit["defaulted"].mean() <= 0.25
    assert 0.75 <= _holdout_auc(credit, CREDIT.training_features, "defaulted") <= 0.92


def test_generators_are_seeded() -> None:
    pd.testing.assert_frame_equal(dd.generate_churn(200, 3), dd.generate_churn(200, 3))
    assert not dd.generate_churn(200, 3).equals(dd.generate_churn(200, 4))
    pd.testing.assert_frame_equal(dd.generate_credit(200, 3), dd.generate_credit(200, 3))


def test_helpers_are_pure_and_seeded(churn: pd.DataFrame) -> None:
    before = churn.copy()
    a = dd.with_nulls(churn, "age", 0.1, seed=1)
    b = dd.with_nulls(churn, "age", 0.1, seed=1)
    pd.testing.assert_frame_equal(churn, before)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(dd.with_nulls(churn, "age", 0.1, seed=2))


def test_with_nulls(churn: pd.DataFrame) -> None:
    out = dd.with_nulls(churn, "plan", 0.05, seed=1)
    assert out["plan"].isna().sum() == 300
    assert dd.with_nulls(churn, "age", 0.01, seed=1)["age"].isna().sum() == 60


def test_with_wrong_dtype(churn: pd.DataFrame) -> None:
    out = dd.with_wrong_dtype(churn, "monthly_charges", 0.01, seed=1)
    as_numbers = pd.to_numeric(out["monthly_charges"], errors="coerce")
    assert out["monthly_charges"].dtype == object
    assert as_numbers.isna().sum() == 60


def test_with_out_of_range(churn: pd.DataFrame) -> None:
    out = dd.with_out_of_range(churn, "age", 0.02, seed=1)
    assert (out["age"] < 18).sum() == 120
    assert out["age"].dtype == churn["age"].dtype
    cat = dd.with_out_of_range(churn, "region", 0.02, seed=1)
    assert (~cat["region"].isin(["north", "south", "east", "west"])).sum() == 120


def test_without_and_with_extra_column(churn: pd.DataFrame) -> None:
    assert "plan" not in dd.without_column(churn, "plan").columns
    assert dd.with_extra_column(churn, "coupon")["coupon"].notna().all()
    with pytest.raises(ValueError, match="already exists"):
        dd.with_extra_column(churn, "age")
    with pytest.raises(KeyError, match="nope"):
        dd.without_column(churn, "nope")


def test_with_shift_moves_numeric_and_categorical(churn: pd.DataFrame) -> None:
    out = dd.with_shift(churn, ["monthly_charges", "contract"], 1.0, seed=1)
    moved = out["monthly_charges"].mean() - churn["monthly_charges"].mean()
    assert moved == pytest.approx(churn["monthly_charges"].std(), rel=1e-6)
    rarest = churn["contract"].value_counts().idxmin()
    assert (out["contract"] == rarest).mean() > (churn["contract"] == rarest).mean() + 0.3
    pd.testing.assert_series_equal(out["age"], churn["age"])


def test_with_noisy_labels_flips_exactly(churn: pd.DataFrame) -> None:
    out = dd.with_noisy_labels(churn, "churned", 0.1, seed=1)
    assert (out["churned"] != churn["churned"]).sum() == 600
    assert set(np.unique(out["churned"])) == {0, 1}


def test_a_wider_churn_definition_changes_only_the_label_base_rate() -> None:
    before = dd.generate_churn(4000, seed=8)
    after = dd.generate_churn(4000, seed=8, positive_rate=0.5)
    features = [c for c in before.columns if c != "churned"]
    pd.testing.assert_frame_equal(before[features], after[features])  # same customers
    assert abs(before["churned"].mean() - 0.25) < 0.03 and abs(after["churned"].mean() - 0.5) < 0.03
    with pytest.raises(ValueError, match="positive_rate"):
        dd.generate_churn(10, seed=1, positive_rate=1.0)
