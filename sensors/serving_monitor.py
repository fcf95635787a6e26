"""``<project>_serving_monitor_sensor``: live traffic → monitoring → retraining.

Each tick, two things, both remembered in the cursor so nothing is done twice:

1. the production model servers have logged at least ``min_new_rows`` new input rows since the
   last monitor run → a run of ``<p>_serving_monitor`` (run key = the log position);
2. a new ``<p>/serving_monitor`` materialization says ``retrain`` (live inputs drifted from the
   champion's training data, or live accuracy fell) → one notification, and one run of the
   project's data-commit job on the **latest** commit of the data branch, tagged
   ``ml_platform/trigger=retrain`` (run key = the monitor materialization's storage id).
"""

import json
from pathlib import Path

import dagster as dg

from assets import tags
from assets.jobs import data_commit_job_name
from assets.monitoring import ASSET, monitor_job_name
from ml_platform import cd
from ml_platform.config import ProjectConfig
from ml_platform.notify import Notification, run_link
from resources import DataStoreResource, PlatformResource
from resources.notifier import NotifierResource


def logged_rows(paths: list[Path]) -> int:
    """Lines in the servers' sampled input logs (one JSON record per logged prediction)."""
    total = 0
    for path in paths:
        with path.open("rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return total


def _cursor(raw: str | None) -> tuple[int, int]:
    try:
        data = json.loads(raw or "{}")
        return int(data.get("rows", 0)), int(data.get("storage_id", 0))
    except (ValueError, TypeError, AttributeError):
        return 0, 0


def build_serving_monitor_sensor(
    cfg: ProjectConfig, monitor_job: object, retrain_job: object, *,
    minimum_interval_seconds: int = 60, min_new_rows: int = 200,
) -> dg.SensorDefinition:
    key = dg.AssetKey([cfg.name, ASSET])

    @dg.sensor(
        name=f"{cfg.name}_serving_monitor_sensor",
        jobs=[monitor_job, retrain_job],  # type: ignore[list-item]
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Monitors {cfg.name}'s live traffic every {min_new_rows} logged rows; when the monitor "
        "says retrain, notifies and retrains on the latest data commit.",
    )
    def serving_monitor_sensor(
        context: dg.SensorEvaluationContext,
        platform: PlatformResource,
        data_store: DataStoreResource,
        notifier: NotifierResource,
    ) -> dg.SensorResult | dg.SkipReason:
        rows_seen, storage_seen = _cursor(context.cursor)
        requests: list[dg.RunRequest] = []
        records = context.instance.fetch_materializations(key, limit=20).records
        newest = max((r.storage_id for r in records), default=storage_seen)
        for rec in sorted(records, key=lambda r: r.storage_id):
            meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
            retrain = getattr(meta.get("retrain"), "value", False)
            if rec.storage_id <= storage_seen or not retrain:
                continue
            store = data_store.store()
            head = store.branch_head(cfg.dataset.repository, cfg.dataset.branch)
            reason = str(getattr(meta.get("reason"), "value", ""))
            notifier.send(Notification(
                key=f"retrain:{rec.storage_id}", title=f"{cfg.name}: production needs retraining",
                text=f"{reason}. Retraining on data commit {head[:12]} of {cfg.dataset.branch}.",
                severity="warning", link=run_link(notifier.dagster_url, rec.run_id),
                fields={"champion": str(getattr(meta.get("champion_version"), "value", "?")),
                        "data commit": head[:12]}))
            requests.append(dg.RunRequest(
                run_key=f"retrain:{rec.storage_id}", job_name=data_commit_job_name(cfg),
                tags={tags.PROJECT: cfg.name, tags.DATA_COMMIT: head, tags.DATA_BRANCH: cfg.dataset.branch,
                      tags.TRIGGER: "retrain", tags.SCOPE: str(cfg.dataset.on_commit)}))
        logs = sorted(cd.Environment(cfg.name, "production", platform.paths).deployer.store.dir
                      .glob("*.samples.jsonl"))
        rows = logged_rows(logs)
        if rows < rows_seen:  # logs rotated or production redeployed from scratch
            rows_seen = 0
        if rows - rows_seen >= min_new_rows:
            requests.append(dg.RunRequest(run_key=f"monitor:{rows}", job_name=monitor_job_name(cfg),
                                          tags={tags.PROJECT: cfg.name, tags.TRIGGER: "serving_monitor"}))
            rows_seen = rows
        cursor = json.dumps({"rows": rows_seen, "storage_id": newest})
        if not requests:
            return dg.SkipReason(f"{rows - rows_seen} new logged prediction request(s) of "
                                 f"{min_new_rows} needed for a monitor run; no new retraining request")
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return serving_monitor_sensor
