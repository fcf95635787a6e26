"""The CI graph materialized into a temporary instance, as the sensor would run it."""

from __future__ import annotations

import dagster as dg

from ml_platform import demo_data
from ml_platform.settings import platform_paths
from ml_platform.tracking import ModelRegistry
from orchestration import execute_requests, sensor_run_requests
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_data_commit_sensor"


def run_commit(defs, instance, churn, cursor=None):
    requests, cursor = sensor_run_requests(defs, instance, SENSOR, cursor)
    return list(execute_requests(defs, instance, churn, requests)), cursor


def test_clean_commit_passes_every_gate_and_registers_a_challenger(defs, instance, churn, store) -> None:
    commit = commit_frame(store, churn, clean_frame())
    (outcome,), _ = run_commit(defs, instance, churn)
    assert outcome.data_commit == commit
    assert outcome.decision == "PROMOTE", outcome
    assert set(outcome.materialized) == {
        f"churn/{a}"
        for a in (
            "training_data",
            "validation_report",
            "drift_report",
            "candidate_model",
            "evaluation",
            "promotion_decision",
        )
    }
    assert {g.check for g in outcome.gates} >= {"row_count", "schema_valid", "no_drift", "metric_thresholds"}
    # The materialization carries the data commit as its data version.
    event = instance.get_latest_materialization_event(dg.AssetKey(["churn", "training_data"]))
    assert event.asset_materialization.tags["dagster/data_version"] == commit
    paths = platform_paths()
    registry = ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    challenger = registry.get_alias("churn", "challenger")
    assert challenger is not None and challenger.version == 1


def test_corrupted_commit_is_blocked_by_schema_gate_and_nothing_downstream_runs(
    defs, instance, churn, store
) -> None:
    bad = demo_data.with_wrong_dtype(clean_frame(), "monthly_charges", 0.02, seed=3)
    commit_frame(store, churn, bad)
    (outcome,), _ = run_commit(defs, instance, churn)
    assert outcome.decision == "BLOCKED"
    assert outcome.blocked_by == ["schema_valid"]
    assert "churn/candidate_model" not in outcome.materialized
    assert "churn/evaluation" not in outcome.materialized
    assert "churn/validation_report" in outcome.materialized  # the evidence is kept
    schema = next(g for g in outcome.gates if g.check == "schema_valid")
    assert schema.metadata["observed"] > 0
    assert "monthly_charges" in schema.metadata["message"]


def test_run_reads_its_pinned_commit_not_the_branch_head(defs, instance, churn, store) -> None:
    first = commit_frame(store, churn, clean_frame(seed=1), "first")
    requests, _ = sensor_run_requests(defs, instance, SENSOR, None)
    # A commit lands after the request was made but before the run executes.
    commit_frame(store, churn, demo_data.with_wrong_dtype(clean_frame(seed=2), "age", 0.05, seed=1), "second")
    (outcome,) = list(execute_requests(defs, instance, churn, requests))
    assert outcome.data_commit == first
    assert outcome.decision == "PROMOTE"
    event = instance.get_latest_materialization_event(dg.AssetKey(["churn", "training_data"]))
    assert event.asset_materialization.metadata["data_commit"].value == first
