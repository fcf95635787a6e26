"""The drift gate: Evidently on seeded samples, with per-column methods fixed by the config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml_platform import demo_data as dd
from ml_platform.config import GateMode, ProjectConfig, load_project
from ml_platform.drift import compute_drift, run_evidently, sample_rows, write_drift_report
from ml_platform.errors import ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
CHURN = load_project(ROOT / "projects" / "churn.yaml")


def with_drift(cfg: ProjectConfig, **update: object) -> ProjectConfig:
    return cfg.model_copy(update={"drift": cfg.drift.model_copy(update=update)})


SMALL = with_drift(CHURN, max_sample_rows=3000)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return dd.generate_churn(5000, seed=1)


@pytest.fixture(scope="module")
def current() -> pd.DataFrame:
    return dd.generate_churn(5000, seed=2)


def test_one_std_shift_on_two_columns_drifts_exactly_those(
    reference: pd.DataFrame, current: pd.DataFrame
) -> None:
    shifted = dd.with_shift(current, ["age", "monthly_charges"], 1.0, seed=3)
    result = compute_drift(reference, shifted, SMALL)
    assert result.drifted_columns == ["age", "monthly_charges"]
    assert result.share_drifted == pytest.approx(2 / 9)
    assert not result.dataset_drift  # 0.22 < drift_share 0.3
    by_name = {c.column: c for c in result.columns}
    assert by_name["age"].method == "wasserstein" and by_name["age"].threshold == 0.1
    assert by_name["age"].score > 0.5 and by_name["tenure_months"].score < 0.1
    assert by_name["plan"].method == "jensenshannon"


def test_no_shift_no_drift(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    result = compute_drift(reference, current, SMALL)
    assert result.drifted_columns == [] and result.share_drifted == 0.0
    v = result.verdict(GateMode.BLOCKING)
    assert v.passed and v.gate == "no_drift" and v.observed == 0.0 and v.threshold == 0.3
    assert "no dataset drift: 0 of 9 columns" in v.message


def test_dataset_drift_fails_the_verdict(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    cols = ["age", "tenure_months", "monthly_charges", "contract"]
    result = compute_drift(reference, dd.with_shift(current, cols, 1.5, seed=4), SMALL)
    assert set(result.drifted_columns) == set(cols) and result.dataset_drift
    v = result.verdict(GateMode.BLOCKING)
    assert not v.passed and v.blocks and v.observed == pytest.approx(4 / 9)
    assert v.details["columns"]["contract"]["drifted"] is True
    assert v.message.startswith("dataset drift: 4 of 9 columns drifted")


def test_samples_are_bounded_and_seeded(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    a = compute_drift(reference, current, SMALL)
    b = compute_drift(reference, current, SMALL)
    assert (a.reference_sample_rows, a.current_sample_rows) == (3000, 3000)
    assert (a.reference_rows, a.current_rows) == (5000, 5000)
    assert [c.score for c in a.columns] == [c.score for c in b.columns]
    s = sample_rows(reference, ["age"], 100, seed=0)
    assert len(s) == 100 and list(s.columns) == ["age"]
    pd.testing.assert_frame_equal(s, sample_rows(reference, ["age"], 100, seed=0))


def test_sampled_verdicts_equal_full_data(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    shifted = dd.with_shift(current, ["support_calls", "region"], 1.0, seed=5)
    sampled = compute_drift(reference, shifted, SMALL)
    _, full, _ = run_evidently(reference, shifted, SMALL)
    assert [c.drifted for c in sampled.columns] == [c.drifted for c in full]
    assert sampled.drifted_columns == ["support_calls", "region"]


def test_p_value_method_and_configured_columns(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    cfg = with_drift(SMALL, method="ks", column_threshold=0.01, columns=["age", "tenure_months"])
    result = compute_drift(reference, dd.with_shift(current, ["age"], 0.5, seed=6), cfg)
    assert [c.column for c in result.columns] == ["age", "tenure_months"]
    assert result.drifted_columns == ["age"]  # ks: drift when the p-value is below 0.01
    assert "p=" in result.message()


def test_csv_typed_current_frame_works(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    raw = current.astype({c: "object" for c in ["plan", "contract", "region", "gender"]})
    raw["age"] = raw["age"].astype(object)
    raw.loc[:9, "age"] = "unknown"  # the schema gate reports these; drift leaves them out
    result = compute_drift(reference, raw, with_drift(CHURN, max_sample_rows=5000))  # no sampling
    age = next(c for c in result.columns if c.column == "age")
    assert age.non_numeric == 10 and not age.drifted


def test_missing_column_or_empty_frame_is_reported(reference: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed, match="current data lacks drift column.*'plan'"):
        compute_drift(reference, reference.drop(columns=["plan"]), SMALL)
    with pytest.raises(ValidationFailed, match="no rows"):
        compute_drift(reference, reference.iloc[:0], SMALL)


def test_report_files(reference: pd.DataFrame, current: pd.DataFrame, tmp_path: Path) -> None:
    result = compute_drift(reference, dd.with_shift(current, ["age"], 1.0, seed=7), SMALL)
    paths = write_drift_report(result, tmp_path / "d")
    assert paths["drift_html"].stat().st_size > 10_000
    evidently_doc = json.loads(paths["drift_json"].read_text())
    assert "metrics" in evidently_doc
    summary = json.loads(paths["drift_summary"].read_text())
    assert summary["details"]["drifted_columns"] == ["age"] and summary["passed"] is True
