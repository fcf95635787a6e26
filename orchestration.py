"""Run a project's CI job for data commits in-process, the way the sensor would request it.

Used by `make demo`, the benchmarks and the tests, so all three exercise the sensor's run
requests (pinned tags) and the same job the daemon launches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from assets import tags
from ml_platform.config import ProjectConfig


@dataclass(frozen=True)
class GateResult:
    asset: str
    check: str
    passed: bool
    blocking: bool
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    data_commit: str
    success: bool
    materialized: list[str]
    gates: list[GateResult]
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    promotion: dict[str, Any] | None = None  # metadata of the promotion_decision materialization

    @property
    def failed_checks(self) -> list[str]:
        return [g.check for g in self.gates if not g.passed]

    @property
    def blocked_by(self) -> list[str]:
        return [g.check for g in self.gates if not g.passed and g.blocking]

    @property
    def decision(self) -> str:
        """PROMOTE / HOLD / REJECT as recorded by promotion_decision, else BLOCKED by a data
        gate, PASS (no decision asset in the job) or ERROR."""
        if self.promotion is not None:
            return str(self.promotion["decision"])
        if self.blocked_by:
            return "BLOCKED"
        return "PASS" if self.success else "ERROR"


def _metadata(evaluation: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}


def summarize(result: dg.ExecuteInProcessResult, data_commit: str) -> RunOutcome:
    gates = [
        GateResult(
            asset=e.asset_key.to_user_string(),
            check=e.check_name,
            passed=e.passed,
            blocking=e.severity == dg.AssetCheckSeverity.ERROR,
            metadata=_metadata(e),
        )
        for e in result.get_asset_check_evaluations()
    ]
    events = result.get_asset_materialization_events()
    materialized = [m.asset_key.to_user_string() for m in events]
    decisions = [
        _metadata(m.materialization) for m in events if m.asset_key.path[-1] == "promotion_decision"
    ]
    error = None
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        non_gate = [e for e in failures if "DagsterAssetCheckFailedError" not in str(e.event_specific_data)]
        if non_gate:
            error = str(non_gate[0].event_specific_data.error.message).strip()  # type: ignore[union-attr]
    promotion = decisions[-1] if decisions else None
    return RunOutcome(
        result.run_id, data_commit, result.success, materialized, gates, error, promotion=promotion
    )


def sensor_run_requests(
    defs: dg.Definitions, instance: dg.DagsterInstance, sensor_name: str, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    """One tick of a sensor, as the daemon would evaluate it."""
    sensor = defs.resolve_sensor_def(sensor_name)
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources or {})
    )
    data = sensor.evaluate_tick(ctx)
    return list(data.run_requests or []), data.cursor


@dataclass(frozen=True)
class SensorTick:
    run_requests: list[dg.RunRequest]
    asset_events: list[Any]
    cursor: str | None
    skip_message: str | None


def sensor_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, sensor_name: str, cursor: str | None
) -> SensorTick:
    """One tick of a sensor as the daemon runs it, including what the daemon does with the
    asset events the sensor returns: they are recorded on the instance (the UI shows them)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources or {})
    )
    data = sensor.evaluate_tick(ctx)
    events = list(data.asset_events or [])
    for event in events:
        instance.report_runless_asset_event(event)
    return SensorTick(list(data.run_requests or []), events, data.cursor, data.skip_message)


def execute_requests(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: ProjectConfig,
    requests: list[dg.RunRequest],
    *,
    console_log_level: str = "INFO",
    job_name: str | None = None,
) -> Iterator[RunOutcome]:
    """Execute each request's run in-process; the event log still records everything (the UI
    shows it); ``console_log_level`` only quiets what is echoed to the terminal. ``job_name``:
    the job the sensor targets (default: the project's CI job)."""
    job = defs.resolve_job_def(job_name or f"{cfg.name}_ci")
    run_config = {"loggers": {"console": {"config": {"log_level": console_log_level}}}}
    for request in requests:
        result = job.execute_in_process(
            instance=instance, tags=dict(request.tags), run_config=run_config, raise_on_error=False
        )
        yield summarize(result, request.tags.get(tags.DATA_COMMIT, ""))
