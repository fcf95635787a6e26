"""The schema gate: schema from config, lazy failure cases, equality with plain Pandera."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing.pandas import Series

from ml_platform import demo_data as dd
from ml_platform.config import GateMode, ProjectConfig, load_project
from ml_platform.dataset import load_frame, to_bytes
from ml_platform.errors import ConfigError
from ml_platform.validation import (
    _full,
    build_schema,
    validate_frame,
    write_validation_report,
)

ROOT = Path(__file__).resolve().parents[2]
CHURN = load_project(ROOT / "projects" / "churn.yaml")


class ChurnAgeOnly(pa.DataFrameModel):
    """A custom schema_class for the tests: a dataframe-level check the masks cannot evaluate."""

    age: Series[int] = pa.Field(ge=18, le=100)

    class Config:
        strict = "filter"
        coerce = True

    @pa.dataframe_check
    def not_empty(cls, df: pd.DataFrame) -> bool:  # type: ignore[misc]
        return len(df) > 0


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return dd.generate_churn(1000, seed=11)


def plain_pandera(df: pd.DataFrame, cfg: ProjectConfig = CHURN) -> tuple[bool, int, dict[str, int]]:
    r = _full(build_schema(cfg), df, 50)
    return r.passed, r.n_failure_cases, dict(r.error_counts)


def test_schema_from_config_has_every_column_and_rule() -> None:
    schema = build_schema(CHURN)
    assert list(schema.columns) == [*CHURN.feature_names, "churned"]
    assert schema.strict is True and schema.coerce is True
    age = schema.columns["age"]
    assert str(age.dtype) == "int64" and not age.nullable
    assert [c.error for c in age.checks] == ["in_range(18, 100)"]
    assert age.checks[0].statistics["min_value"] == 18
    assert schema.columns["plan"].checks[0].statistics["allowed_values"] == [
        "basic",
        "standard",
        "premium",
    ]
    assert str(schema.columns["monthly_charges"].dtype) == "float64"
    assert schema.columns["churned"].checks[0].statistics["allowed_values"] == [0, 1]


def test_nullable_int_uses_the_nullable_dtype() -> None:
    age = CHURN.features[0].model_copy(update={"nullable": True})
    cfg = CHURN.model_copy(update={"features": [age, *CHURN.features[1:]]})
    assert str(build_schema(cfg).columns["age"].dtype) == "Int64"


def test_clean_frame_passes_and_is_coerced(churn: pd.DataFrame) -> None:
    raw = load_frame(to_bytes(churn, "c.csv"), "c.csv")  # category columns come back as str
    result = validate_frame(raw, CHURN)
    assert result.passed and result.n_failure_cases == 0 and result.n_rows == 1000
    assert result.frame is not None
    assert isinstance(result.frame["plan"].dtype, pd.CategoricalDtype)
    assert raw["plan"].dtype == object  # the caller's frame is left alone
    v = result.verdict(GateMode.BLOCKING)
    assert (v.gate, v.passed, v.observed, v.threshold) == ("schema_valid", True, 0, 0)


def test_out_of_range_and_unknown_category_counts(churn: pd.DataFrame) -> None:
    bad = dd.with_out_of_range(dd.with_out_of_range(churn, "age", 0.02, 1), "plan", 0.003, 2)
    result = validate_frame(bad, CHURN)
    assert not result.passed
    assert result.n_failure_cases == 23
    assert dict(result.error_counts) == {
        "age: in_range(18, 100)": 20,
        "plan: isin(['basic', 'standard', 'premium'])": 3,
    }
    assert result.message() == ("23 failure cases in 2 columns: age (in_range 18..100: 20), plan (isin: 3)")
    v = result.verdict(GateMode.WARNING)
    assert not v.passed and not v.blocks and v.observed == 23
    assert set(result.failure_cases.columns) == {"column", "check", "failure_case", "index"}
    assert set(result.failure_cases["column"]) == {"age", "plan"}  # examples of every check


def test_wrong_dtype_is_a_failure_case_not_a_crash(churn: pd.DataFrame) -> None:
    bad = dd.with_wrong_dtype(churn, "monthly_charges", 0.01, seed=3)
    result = validate_frame(bad, CHURN)
    assert not result.passed
    assert result.error_counts["monthly_charges: coerce_dtype('float64')"] == 10
    cases = result.failure_cases
    junk = cases[cases["check"] == "coerce_dtype('float64')"]["failure_case"]
    assert set(junk) <= {"n/a", "unknown", "#REF!", "twelve"} and len(junk) > 0
    assert "monthly_charges (not coercible to float64: 10" in result.message()


def test_missing_and_extra_columns_are_named(churn: pd.DataFrame) -> None:
    bad = dd.with_extra_column(dd.without_column(churn, "region"), "coupon_code")
    result = validate_frame(bad, CHURN)
    assert not result.passed
    assert "region (missing column)" in result.message()
    assert "coupon_code (unexpected column)" in result.message()
    assert result.error_counts == {
        "coupon_code: column_in_schema": 1,
        "region: column_in_dataframe": 1,
    }


def test_nulls_and_non_binary_target(churn: pd.DataFrame) -> None:
    bad = dd.with_nulls(churn, "contract", 0.01, seed=4).assign(
        churned=churn["churned"].where(churn.index % 100 != 0, 2)
    )
    result = validate_frame(bad, CHURN)
    assert result.error_counts == {"contract: not_nullable": 10, "churned: isin([0, 1])": 10}


CORRUPTIONS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "nulls": lambda d: dd.with_nulls(d, "tenure_months", 0.03, 1),
    "wrong_dtype_int": lambda d: dd.with_wrong_dtype(d, "age", 0.02, 2),
    "wrong_dtype_and_range": lambda d: dd.with_out_of_range(
        dd.with_wrong_dtype(d, "age", 0.02, 2), "age", 0.01, 3
    ),
    "wrong_dtype_category": lambda d: dd.with_wrong_dtype(d, "plan", 0.02, 2),
    "out_of_range_many": lambda d: dd.with_out_of_range(
        dd.with_out_of_range(dd.with_out_of_range(d, "age", 0.01, 1), "support_calls", 0.02, 2),
        "gender",
        0.03,
        3,
    ),
    "nulls_and_range_same_column": lambda d: dd.with_out_of_range(
        dd.with_nulls(d, "monthly_charges", 0.02, 1), "monthly_charges", 0.01, 5
    ),
    "columns": lambda d: dd.with_extra_column(dd.without_column(d, "plan"), "zzz"),
    "everything": lambda d: dd.with_extra_column(
        dd.with_nulls(
            dd.with_wrong_dtype(dd.with_out_of_range(d, "data_usage_gb", 0.02, 1), "age", 0.01, 2),
            "region",
            0.02,
            3,
        ),
        "extra",
    ),
    "labels": lambda d: d.assign(churned=d["churned"].where(d.index % 50 != 0, 7)),
    "shifted_out_of_bounds": lambda d: dd.with_shift(d, ["age", "monthly_charges"], 3.0, 1),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("via_csv", [False, True])
def test_gate_equals_plain_full_frame_pandera(churn: pd.DataFrame, name: str, via_csv: bool) -> None:
    bad = CORRUPTIONS[name](churn)
    if via_csv:  # what the pipeline reads: object columns instead of categoricals
        bad = load_frame(to_bytes(bad, "b.csv"), "b.csv")
    result = validate_frame(bad, CHURN, max_failure_rows=10_000)
    assert (result.passed, result.n_failure_cases, dict(result.error_counts)) == plain_pandera(bad)
    assert result.strategy == "masked"  # the fast path ran, it did not fall back
    assert not result.passed
    assert 0 < len(result.failure_cases) <= result.n_failure_cases


def test_failure_table_is_bounded(churn: pd.DataFrame) -> None:
    bad = dd.with_out_of_range(churn, "age", 0.5, 1)
    result = validate_frame(bad, CHURN, max_failure_rows=7)
    assert result.n_failure_cases == 500 and len(result.failure_cases) == 7


def test_non_default_index_is_handled(churn: pd.DataFrame) -> None:
    bad = dd.with_wrong_dtype(churn, "age", 0.02, 2)
    bad.index = bad.index * 3 + 1000
    result = validate_frame(bad, CHURN, max_failure_rows=10_000)
    assert (result.passed, result.n_failure_cases, dict(result.error_counts)) == plain_pandera(bad)
    assert set(result.failure_cases["index"].dropna()) <= set(bad.index)


def test_custom_schema_class_is_used(churn: pd.DataFrame) -> None:
    cfg = CHURN.model_copy(update={"schema_class": f"{__name__}:ChurnAgeOnly"})
    assert list(build_schema(cfg).columns) == ["age"]
    result = validate_frame(dd.with_out_of_range(churn, "age", 0.01, 1), cfg)
    assert result.strategy == "full"  # a dataframe check: Pandera runs on its own
    assert result.error_counts == {"age: greater_than_or_equal_to(18)": 10}


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("no_colon_here", "pkg.module:Class"),
        ("ml_platform.nope:X", "cannot import module 'ml_platform.nope'"),
        ("ml_platform.config:ProjectConfig", "expected a pandera.pandas.DataFrameModel"),
        ("ml_platform.config:Missing", "is missing"),
    ],
)
def test_bad_schema_class_is_a_config_error(path: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_schema(CHURN.model_copy(update={"schema_class": path}))


def test_report_files(churn: pd.DataFrame, tmp_path: Path) -> None:
    result = validate_frame(dd.with_out_of_range(churn, "plan", 0.01, 1), CHURN)
    paths = write_validation_report(result, tmp_path / "r")
    doc = json.loads(paths["validation_json"].read_text())
    assert doc["passed"] is False and doc["failure_cases"] == 10
    assert doc["error_counts"] == {"plan: isin(['basic', 'standard', 'premium'])": 10}
    assert len(doc["failure_cases_head"]) == 10
    page = paths["validation_html"].read_text()
    assert "FAILED" in page and "__invalid__" in page and "plan (isin: 10)" in page


def test_nullable_column_accepts_nulls_but_not_bad_values(churn: pd.DataFrame) -> None:
    age = CHURN.features[0].model_copy(update={"nullable": True})
    cfg = CHURN.model_copy(update={"features": [age, *CHURN.features[1:]]})
    with_nulls = dd.with_nulls(churn, "age", 0.05, 1)
    assert validate_frame(with_nulls, cfg).passed
    bad = dd.with_out_of_range(with_nulls, "age", 0.01, 2)
    result = validate_frame(bad, cfg, max_failure_rows=10_000)
    assert (result.passed, result.n_failure_cases, dict(result.error_counts)) == plain_pandera(bad, cfg)
    assert result.error_counts == {"age: in_range(18, 100)": 10}
