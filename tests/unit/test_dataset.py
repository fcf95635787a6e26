"""Reading/writing project tables and splitting them into model inputs and labels."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from ml_platform.config import load_project
from ml_platform.dataset import load_frame, split_features_target, to_bytes
from ml_platform.demo_data import generate_churn
from ml_platform.errors import ConfigError, ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
CHURN = load_project(ROOT / "projects" / "churn.yaml")


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate_churn(300, seed=0)


@pytest.mark.parametrize("path", ["t/customers.csv", "t/customers.parquet"])
def test_round_trip_from_bytes_and_stream(churn: pd.DataFrame, path: str) -> None:
    raw = to_bytes(churn, path)
    from_bytes = load_frame(raw, path)
    from_stream = load_frame(io.BytesIO(raw), path)
    pd.testing.assert_frame_equal(from_bytes, from_stream)
    assert list(from_bytes.columns) == list(churn.columns)
    assert from_bytes["age"].tolist() == churn["age"].tolist()
    assert from_bytes["plan"].astype(str).tolist() == churn["plan"].astype(str).tolist()


def test_parquet_keeps_dtypes(churn: pd.DataFrame) -> None:
    back = load_frame(to_bytes(churn, "x.parquet"), "x.parquet")
    pd.testing.assert_series_equal(back.dtypes, churn.dtypes)


def test_csv_keeps_bad_values_visible() -> None:
    raw = b"age,plan\n30,basic\nunknown,premium\n41,gold\n"
    df = load_frame(raw, "d.csv")
    assert df["age"].dtype == object  # not coerced to NaN: the schema gate must see "unknown"
    assert df["age"].tolist() == ["30", "unknown", "41"]
    assert df["plan"].tolist() == ["basic", "premium", "gold"]


def test_unknown_extension_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\.json"):
        load_frame(b"{}", "data/x.json")
    with pytest.raises(ConfigError):
        to_bytes(pd.DataFrame({"a": [1]}), "x.xlsx")


def test_unreadable_parquet_is_reported() -> None:
    with pytest.raises(ValidationFailed, match="x.parquet"):
        load_frame(b"this is not parquet", "x.parquet")


def test_empty_csv_is_reported() -> None:
    with pytest.raises(ValidationFailed, match="e.csv"):
        load_frame(b"", "e.csv")


def test_split_features_target(churn: pd.DataFrame) -> None:
    X, y = split_features_target(churn, CHURN)
    assert list(X.columns) == CHURN.training_features
    assert "gender" not in X.columns  # sensitive attribute stays out of training
    assert set(y.unique()) <= {0, 1}
    assert y.sum() == (churn["churned"] == 1).sum()


def test_split_names_missing_columns(churn: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed, match="tenure_months"):
        split_features_target(churn.drop(columns=["tenure_months"]), CHURN)
