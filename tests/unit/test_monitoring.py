"""serving_monitor on sampled JSONL logs (as model servers write them) and router counters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_platform.config import AnalysisSpec, ProjectConfig, load_project
from ml_platform.monitoring import read_sample_logs, serving_monitor
from ml_platform.rollout import VariantMetrics
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cfg() -> ProjectConfig:
    base = load_project(ROOT / "projects" / "churn.yaml")
    analysis = AnalysisSpec(max_error_rate=0.02, min_requests=50, min_feedback=20,
                            min_live_accuracy=0.7)
    return base.model_copy(update={"rollout": base.rollout.model_copy(
        update={"analysis": analysis})})


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n) + int(shift * 40),
        "tenure_months": rng.integers(0, 120, n),
        "monthly_charges": (rng.uniform(10, 200, n) * (1 + 3 * shift)).round(2),
        "support_calls": rng.poisson(2 + 8 * shift, n),
        "data_usage_gb": (rng.gamma(2.0, 20.0, n) * (1 + 4 * shift)).round(1),
        "plan": rng.choice(["basic", "standard", "premium"], n),
        "contract": rng.choice(["monthly", "annual", "two_year"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "gender": rng.choice(["female", "male", "nonbinary"], n),
    })


def write_log(path: Path, df: pd.DataFrame, cfg: ProjectConfig, batch: int = 3) -> Path:
    cols = cfg.training_features  # what the servers receive and log (no sensitive columns)
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, len(df), batch):
            part = df.iloc[start:start + batch][cols]
            inputs = json.loads(part.to_json(orient="columns"))
            record = {"request_id": f"r{start}", "variant": "stable",
                      "inputs": {c: list(v.values()) for c, v in inputs.items()}}
            fh.write(json.dumps(record) + "\n")
            fh.write(json.dumps({"type": "feedback", "request_id": f"r{start}", "label": 1})
                     + "\n")
        fh.write('{"request_id": "cut short by a cra')  # a crash mid-write
    return path


HEALTHY = {"stable": VariantMetrics(requests=900, errors=3, p95_latency_ms=12, mean_score=0.3,
                                    feedback_count=100, live_accuracy=0.8),
           "canary": VariantMetrics(requests=100, errors=0, p95_latency_ms=12, mean_score=0.3,
                                    feedback_count=0, live_accuracy=None)}


def test_reads_prediction_records_and_reports_skipped_lines(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "stable.samples.jsonl", frame(10, 1), cfg)
    live = read_sample_logs([log, tmp_path / "missing.jsonl"], cfg.training_features)
    assert live.rows == 10 and live.skipped_lines == 1 and live.files == (str(log),)
    assert list(live.frame.columns) == cfg.training_features
    bounded = read_sample_logs([log], cfg.training_features, max_rows=4)
    assert bounded.rows == 4  # the newest rows


def test_same_distribution_is_healthy(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "s.jsonl", frame(400, 2), cfg)
    result = serving_monitor(cfg, frame(2000, 1), [log], HEALTHY, min_rows=200)
    assert result.status == "healthy" and not result.retrain, result.reason
    assert result.check("live_input_drift").status == "pass"
    assert result.check("error_budget").observed == pytest.approx(3 / 1000)
    assert result.check("live_accuracy").observed == pytest.approx(0.8)
    assert result.metadata()["checks"]["live_input_drift"]["passed"] is True


def test_drifted_live_inputs_ask_for_retraining(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "s.jsonl", frame(400, 2, shift=1.0), cfg)
    result = serving_monitor(cfg, frame(2000, 1), [log], HEALTHY, min_rows=200)
    assert result.status == "unhealthy" and result.retrain
    drift = result.check("live_input_drift")
    assert drift.status == "fail" and "monthly_charges" in drift.details["drifted_columns"]
    assert "gender" not in drift.details["drifted_columns"]  # never logged: not judged


def test_too_few_logged_rows_is_inconclusive_not_drift(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "s.jsonl", frame(30, 2, shift=1.0), cfg)
    result = serving_monitor(cfg, frame(2000, 1), [log], HEALTHY, min_rows=200)
    assert result.status == "inconclusive" and not result.retrain
    assert result.check("live_input_drift").status == "insufficient"
    assert "30 logged row(s), need 200" in result.reason


def test_blown_error_budget_is_unhealthy_without_retraining(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "s.jsonl", frame(30, 2), cfg)
    failing = {"stable": VariantMetrics(requests=1000, errors=80, p95_latency_ms=9,
                                        mean_score=0.3)}
    result = serving_monitor(cfg, frame(500, 1), [log], failing, min_rows=200)
    assert result.status == "unhealthy" and not result.retrain
    assert result.check("error_budget").status == "fail" and "serving fault" in result.reason
    assert result.check("live_accuracy").status == "insufficient"


def test_lost_live_accuracy_asks_for_retraining(cfg, tmp_path) -> None:
    log = write_log(tmp_path / "s.jsonl", frame(30, 2), cfg)
    worse = {"stable": VariantMetrics(requests=1000, errors=0, p95_latency_ms=9, mean_score=0.3,
                                      feedback_count=50, live_accuracy=0.5)}
    result = serving_monitor(cfg, frame(500, 1), [log], worse, min_rows=200)
    assert result.retrain and result.check("live_accuracy").status == "fail"
