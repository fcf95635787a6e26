"""Live traffic → serving_monitor → retraining, on a real production deployment.

No `from __future__ import annotations`: Dagster resolves the annotations of asset functions.
"""

import json

import dagster as dg
import pytest

from definitions import build_defs
from ml_platform import cd, demo_data
from ml_platform.config import ProjectConfig
from ml_platform.settings import platform_paths
from ml_platform.traffic import replay
from orchestration import execute_requests, sensor_run_requests, sensor_tick
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_serving_monitor_sensor"


def _latest_monitor(instance: dg.DagsterInstance) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(["churn", "serving_monitor"]))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _monitor(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    tick = sensor_tick(defs, instance, SENSOR, cursor)
    monitor = [r for r in tick.run_requests if r.job_name == "churn_serving_monitor"]
    assert len(monitor) == 1, tick.skip_message
    result = defs.resolve_job_def("churn_serving_monitor").execute_in_process(
        instance=instance, tags=dict(monitor[0].tags))
    assert result.success
    return _latest_monitor(instance), tick.cursor


def test_drifted_live_traffic_asks_for_retraining_once(
    churn: ProjectConfig, store, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_PLATFORM_IMAGES", "off")
    monkeypatch.setenv("ML_PLATFORM_SERVING_SAMPLE_RATE", "1.0")  # log every prediction
    defs = build_defs([churn])
    commit_frame(store, churn, clean_frame(seed=1))
    requests, _ = sensor_run_requests(defs, instance, "churn_data_commit_sensor", None)
    (deployed,) = execute_requests(defs, instance, churn, requests, console_log_level="CRITICAL",
                                   job_name="churn_production")
    assert deployed.success, deployed.failed_checks
    router = cd.Environment("churn", "production", platform_paths()).router_url()

    # nothing logged yet: nothing to do, and the sensor says why
    first = sensor_tick(defs, instance, SENSOR, None)
    assert not first.run_requests and "of 200 needed for a monitor run" in str(first.skip_message)

    # live customers like the training data: healthy, no retraining
    live = clean_frame(1500, seed=21)
    replay(router, live[churn.training_features], live[churn.target], rate_per_s=1000,
           max_requests=400, max_seconds=30)
    healthy, cursor = _monitor(defs, instance, first.cursor)
    assert healthy["status"] == "healthy" and healthy["retrain"] is False, healthy["reason"]
    assert healthy["live_rows"] >= 400 and healthy["champion_version"] == 1
    quiet = sensor_tick(defs, instance, SENSOR, cursor)
    assert not quiet.run_requests

    # after a price change the live inputs drift: the monitor asks for retraining ...
    shifted = demo_data.with_shift(clean_frame(1500, seed=22), ["monthly_charges", "data_usage_gb", "plan"],
                                   1.5, seed=22)
    replay(router, shifted[churn.training_features], shifted[churn.target], rate_per_s=1000,
           max_requests=1200, max_seconds=30)
    drifted, cursor = _monitor(defs, instance, quiet.cursor or cursor)
    assert drifted["status"] == "unhealthy" and drifted["retrain"] is True
    assert "live_input_drift" in drifted["reason"]
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["churn", "serving_monitor"]), "live_healthy")])
    assert check  # the check result is recorded for the UI

    # ... and the next tick notifies once and retrains on the branch head, exactly once
    head = commit_frame(store, churn, clean_frame(seed=23), "fresh labels")
    tick = sensor_tick(defs, instance, SENSOR, cursor)
    retrain = [r for r in tick.run_requests if r.job_name == "churn_production"]
    assert len(retrain) == 1
    assert retrain[0].tags["ml_platform/data_commit"] == head
    assert retrain[0].tags["ml_platform/trigger"] == "retrain"
    notes = [json.loads(line) for line in platform_paths().notifications.read_text().splitlines()]
    assert [n["title"] for n in notes if n["key"].startswith("retrain:")] == [
        "churn: production needs retraining"]
    again = sensor_tick(defs, instance, SENSOR, tick.cursor)
    assert not [r for r in again.run_requests if r.job_name == "churn_production"]
