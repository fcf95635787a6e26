"""``failure_alerts_sensor``: one notification per failed asset check and per failed run.

It walks finished runs (success and failure) in the order of their completion events' storage
ids, which is its cursor: each run is looked at once, so each failure is notified once. A failed
check (any project, any severity) and a failed run each give one notification with a link to the
run in the Dagster UI. Delivery errors are logged (without the webhook URL) and retried from the
same place at the next tick.
"""

from typing import Any

import dagster as dg

from ml_platform import notify
from ml_platform.notify import AlertCursor, FinishedRun, Notification
from resources.notifier import NotifierResource

SENSOR_NAME = "failure_alerts_sensor"
_FINISHED = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
_SEVERITY: dict[Any, notify.Severity] = {
    dg.AssetCheckSeverity.ERROR: "error",
    dg.AssetCheckSeverity.WARN: "warning",
}


def _meta_text(metadata: dict[str, Any], key: str) -> str | None:
    entry = metadata.get(key)
    value = getattr(entry, "value", entry)
    return None if value is None else str(value)


def _check_notifications(instance: dg.DagsterInstance, run_id: str, base_url: str) -> list[Notification]:
    out = []
    for rec in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        ev = rec.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if ev.passed:
            continue
        meta = dict(ev.metadata)
        facts = {
            k: v for k in ("mode", "observed", "threshold", "model_version") if (v := _meta_text(meta, k))
        }
        asset = ev.asset_key.to_user_string()
        out.append(
            notify.check_failure(
                key=f"{run_id}:{asset}:{ev.check_name}",
                project=ev.asset_key.path[0],
                asset=asset,
                check=ev.check_name,
                severity=_SEVERITY.get(ev.severity, "error"),
                message=_meta_text(meta, "message") or ev.description or "check failed",
                run_id=run_id,
                base_url=base_url,
                facts=facts,
            )
        )
    return out


def _root_cause(error: Any) -> str:
    """The innermost error's first line: the user's exception, not Dagster's wrapper around it."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = str(error.message).strip().splitlines()
    return lines[0] if lines else str(error.cls_name)


def _run_failure(instance: dg.DagsterInstance, entry: dg.EventLogEntry, base_url: str) -> Notification:
    steps = instance.get_records_for_run(entry.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    errors = [getattr(r.event_log_entry.dagster_event.event_specific_data, "error", None) for r in steps]  # type: ignore[union-attr]
    first = next((_root_cause(e) for e in errors if e is not None), "")
    summary = (entry.dagster_event.message if entry.dagster_event else None) or "run failed"
    return notify.run_failure(
        key=f"{entry.run_id}:run_failure",
        job=entry.job_name or "?",
        run_id=entry.run_id,
        message=summary + (f" First error: {first}" if first else ""),
        base_url=base_url,
    )


def finished_runs(
    instance: dg.DagsterInstance, after: int, base_url: str, limit: int = 50
) -> list[FinishedRun]:
    """Runs finished after storage id ``after``, oldest first, with their failures' notifications."""
    records, cutoffs = [], []
    for event_type in _FINISHED:
        found = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after),
            limit=limit,
            ascending=True,
        ).records
        records += found
        if len(found) == limit:  # more may follow: only trust ids up to this list's last one
            cutoffs.append(found[-1].storage_id)
    cutoff = min(cutoffs, default=None)
    runs = []
    for rec in sorted(records, key=lambda r: r.storage_id):
        if cutoff is not None and rec.storage_id > cutoff:
            break
        entry = rec.event_log_entry
        notes = _check_notifications(instance, entry.run_id, base_url)
        if entry.dagster_event_type == dg.DagsterEventType.RUN_FAILURE:
            notes.append(_run_failure(instance, entry, base_url))
        runs.append(FinishedRun(rec.storage_id, tuple(notes)))
    return runs


def build_failure_alerts_sensor(*, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends one notification (webhook or notifications.jsonl) per failed asset check and per "
        "failed run, with a link to the run.",
    )
    def failure_alerts_sensor(
        context: dg.SensorEvaluationContext, notifier: NotifierResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor = AlertCursor.parse(context.cursor)
        runs = finished_runs(context.instance, cursor.after, notifier.dagster_url)
        delivery = notify.deliver(runs, notifier.notifier(), cursor)
        if delivery.error:
            context.log.warning(f"notification not delivered, will retry: {delivery.error}")
        if delivery.cursor == cursor:
            return dg.SkipReason(delivery.error or "no finished runs since the last tick")
        return dg.SensorResult(cursor=delivery.cursor.dump())

    return failure_alerts_sensor
