"""Model gates, the promotion decision and its cross-run refusal, materialized for real.

No `from __future__ import annotations`: Dagster rejects a string annotation on `context`.
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assets.promotion import require_promotable
from definitions import build_defs
from ml_platform import demo_data
from ml_platform.cli import app
from ml_platform.config import GateMode, ProjectConfig
from ml_platform.errors import GateRefusal
from ml_platform.promotion import DECISION_TAG, FAILED_GATES_TAG
from ml_platform.settings import platform_paths
from ml_platform.tracking import ModelRegistry
from orchestration import RunOutcome, execute_requests, sensor_run_requests
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_data_commit_sensor"
DECISION_KEY = dg.AssetKey(["churn", "promotion_decision"])


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, cfg: ProjectConfig, cursor: str | None,
         job_name: str | None = None):
    requests, cursor = sensor_run_requests(defs, instance, SENSOR, cursor)
    (outcome,) = list(execute_requests(defs, instance, cfg, requests, console_log_level="CRITICAL",
                                       job_name=job_name))
    return outcome, cursor


def _gate(outcome: RunOutcome, name: str):
    return next(g for g in outcome.gates if g.check == name)


def _registry() -> ModelRegistry:
    paths = platform_paths()
    return ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)


def _step_error(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    return failures[0].event_specific_data.error.to_string()  # type: ignore[union-attr]


def test_noisy_labels_are_rejected_and_the_rejection_holds_across_runs(
    defs: dg.Definitions, instance: dg.DagsterInstance, churn: ProjectConfig, store, tmp_path: Path
) -> None:
    # Run 1: a clean commit passes every gate, is promoted, deployed (staging, then production:
    # a first deployment goes straight to 100 %) and so becomes the champion.
    commit_frame(store, churn, clean_frame())
    first, cursor = _run(defs, instance, churn, None, job_name="churn_production")
    assert first.decision == "PROMOTE", first.failed_checks
    assert {"churn/staging_deployment", "churn/production_rollout"} <= set(first.materialized)
    registry = _registry()
    assert registry.get_alias("churn", "champion").version == 1
    assert _gate(first, "no_regression_vs_champion").metadata["message"].startswith("no champion yet")

    # Run 2: 35 % of the labels flipped. The model trains and registers, the regression gate fails
    # against the champion on the same holdout, and the decision records REJECT with its evidence.
    noisy = demo_data.with_noisy_labels(clean_frame(seed=6), "churned", 0.35, seed=6)
    commit_frame(store, churn, noisy, "noisy labels")
    second, _ = _run(defs, instance, churn, cursor)
    assert second.decision == "REJECT"
    regression = _gate(second, "no_regression_vs_champion")
    assert not regression.passed
    assert regression.metadata["mode"] == "blocking" and regression.metadata["verdict"] == "FAIL"
    assert not regression.blocking  # reported WARN, so the decision still ran
    assert regression.metadata["model_version"] == 2 and regression.metadata["detail/champion_version"] == 1
    assert (
        regression.metadata["observed"] < regression.metadata["threshold"] < regression.metadata["baseline"]
    )
    assert "churn/promotion_decision" in second.materialized
    assert second.blocked_by == ["promotable"]
    assert "no_regression_vs_champion" in second.promotion["failed_gates"]
    tags = registry.get_version_tags("churn", 2)
    assert tags[DECISION_TAG] == "REJECT" and "no_regression_vs_champion" in tags[FAILED_GATES_TAG]
    assert registry.get_alias("churn", "champion").version == 1  # the champion did not move

    # Run 3: only the decision, re-launched later (a sensor, a UI click): same verdicts, same REJECT.
    job = defs.resolve_implicit_global_asset_job_def()
    again = job.execute_in_process(instance=instance, asset_selection=[DECISION_KEY], raise_on_error=False)
    assert not again.success
    (promotable,) = again.get_asset_check_evaluations()
    assert not promotable.passed and promotable.severity == dg.AssetCheckSeverity.ERROR
    assert "no_regression_vs_champion" in promotable.metadata["message"].value

    # Run 4: a later step (stand-in for model_image) refuses the rejected version by itself.
    @dg.asset(key=["churn", "model_image_probe"], deps=[DECISION_KEY])
    def probe(context: dg.AssetExecutionContext) -> None:
        require_promotable(context.instance, "churn", 2)

    refused = dg.materialize([probe], instance=instance, raise_on_error=False)
    assert not refused.success
    message = _step_error(refused)
    assert "GateRefusal" in message and "REJECT" in message and "no_regression_vs_champion" in message
    assert require_promotable(instance, "churn", 1).decision.value == "PROMOTE"
    with pytest.raises(GateRefusal, match="no promotion decision"):
        require_promotable(instance, "churn", 99)

    # `ml-platform why` works from MLflow alone: default version = the challenger (2).
    junit = tmp_path / "gates.xml"
    result = CliRunner().invoke(app, ["why", "churn", "--junit-xml", str(junit)])
    assert result.exit_code == 1, result.output
    assert "REJECT" in result.output and "[FAIL] no_regression_vs_champion (blocking)" in result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["decision"] == "REJECT" and props["version"] == "2"
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "no_regression_vs_champion" in failed and "schema_valid" not in failed
    assert int(suite.get("failures")) == len(failed)
    promoted = CliRunner().invoke(app, ["why", "churn", "--version", "1"])
    assert promoted.exit_code == 0 and promoted.output.count("[PASS]") == 13, promoted.output


def _biased_frame(rows: int = 1500) -> pd.DataFrame:
    """Churn driven by gender: a model allowed to see it will use it and treat groups unequally."""
    frame = clean_frame(rows)
    rng = np.random.default_rng(3)
    p = np.where(frame["gender"].astype(str) == "female", 0.75, 0.08)
    frame["churned"] = (rng.random(rows) < p).astype("int64")
    return frame


def test_a_model_using_the_sensitive_attribute_is_held_by_warning_gates(
    instance: dg.DagsterInstance, churn: ProjectConfig, store
) -> None:
    gates = churn.gates.model_copy(
        update={
            # Deliberately bad on two more gates, in warning mode, to see each one fail for real.
            "modes": {"artifact_size": GateMode.WARNING, "latency_budget": GateMode.WARNING},
            "artifact": churn.gates.artifact.model_copy(update={"max_size_mb": 0.001}),
            "latency": churn.gates.latency.model_copy(update={"single_row_p95_ms": 0.001, "repeats": 5}),
        }
    )
    model = churn.model.model_copy(update={"use_sensitive_features": True})
    cfg = churn.model_copy(update={"model": model, "gates": gates})
    defs = build_defs([cfg])
    commit_frame(store, cfg, _biased_frame())
    outcome, _ = _run(defs, instance, cfg, None)

    assert outcome.decision == "HOLD", outcome.failed_checks
    failed = {g.check for g in outcome.gates if not g.passed}
    assert failed == {"explainability", "fairness", "artifact_size", "latency_budget", "promotable"}
    explain = _gate(outcome, "explainability")
    assert explain.metadata["mode"] == "warning" and "gender" in explain.metadata["message"]
    assert str(explain.metadata["report/importance_html"]).endswith("importance.html")
    assert Path(explain.metadata["report/importance_html"]).is_file()
    assert "gender" in _gate(outcome, "fairness").metadata["message"]
    assert _gate(outcome, "metric_thresholds").passed and _gate(outcome, "no_regression_vs_champion").passed
    assert _registry().get_alias("churn", "champion") is None  # HOLD promotes nothing
    with pytest.raises(GateRefusal, match="HOLD"):
        require_promotable(instance, "churn", 1)


def test_a_gate_switched_off_has_no_check(churn: ProjectConfig) -> None:
    gates = churn.gates.model_copy(update={"modes": {"fairness": GateMode.OFF, "reproducible": GateMode.OFF}})
    graph = build_defs([churn.model_copy(update={"gates": gates})]).resolve_asset_graph()
    names = {c.name for c in graph.asset_check_keys}
    assert "fairness" not in names and "reproducible" not in names
    assert {"explainability", "smoke_train", "promotable"} <= names
