"""Definitions smoke test: every project's assets, checks, job and sensor load, with stable names."""

from __future__ import annotations

import dagster as dg

from definitions import defs as load_defs
from ml_platform.config import load_projects
from tests.conftest import ROOT

EXPECTED_ASSETS = {
    "training_data",
    "validation_report",
    "drift_report",
    "candidate_model",
    "evaluation",
    "promotion_decision",
    "staging_deployment",
    "production_rollout",
    "rollout_approval",
}
EXPECTED_CHECKS = {
    ("training_data", "row_count"),
    ("validation_report", "schema_valid"),
    ("drift_report", "no_drift"),
    ("candidate_model", "smoke_train"),
    ("candidate_model", "reproducible"),
    ("candidate_model", "artifact_size"),
    ("candidate_model", "round_trip"),
    ("candidate_model", "dependencies_pinned"),
    ("evaluation", "metric_thresholds"),
    ("evaluation", "no_regression_vs_champion"),
    ("evaluation", "fairness"),
    ("evaluation", "latency_budget"),
    ("evaluation", "explainability"),
    ("promotion_decision", "promotable"),
    ("staging_deployment", "staging_smoke"),
}


def test_every_project_yields_its_graph_job_and_sensor() -> None:
    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    projects = [p.name for p in load_projects(ROOT / "projects")]
    graph = defs.resolve_asset_graph()
    keys = {k.path[0]: set() for k in graph.get_all_asset_keys()}
    for k in graph.get_all_asset_keys():
        keys[k.path[0]].add(k.path[1])
    checks = {(c.asset_key.path[0], c.asset_key.path[1], c.name) for c in graph.asset_check_keys}
    for name in projects:
        assert keys[name] >= EXPECTED_ASSETS
        assert {(name, a, c) for a, c in EXPECTED_CHECKS} <= checks
        assert defs.resolve_job_def(f"{name}_ci") is not None
        for kind in ("data_commit", "rollout"):
            sensor = defs.resolve_sensor_def(f"{name}_{kind}_sensor")
            assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert defs.resolve_job_def(f"{name}_rollout_approval") is not None
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert set(projects) <= groups
    # churn ships on every data commit (dataset.on_commit: production); credit stops at the decision
    assert defs.resolve_sensor_def("churn_data_commit_sensor").job_name == "churn_production"
    assert defs.resolve_sensor_def("credit_data_commit_sensor").job_name == "credit_ci"


def test_blocking_modes_follow_config() -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    blocking = {
        c.name: graph.get_check_spec(c).blocking for c in graph.asset_check_keys if c.asset_key.path[0] == "churn"
    }
    assert blocking["schema_valid"] and blocking["metric_thresholds"]
    # Every model gate makes the decision wait for it (warning ones too); failures report WARN.
    assert blocking["fairness"] and blocking["no_regression_vs_champion"] and blocking["promotable"]
    assert "failure_alerts_sensor" in {s.name for s in defs.sensors}
