"""``<project>_data_commit_sensor``: one run per new data commit, the commit pinned in the run's tags."""


from typing import Any

import dagster as dg

from assets import tags
from ml_platform.config import ProjectConfig
from ml_platform.triggers import plan_data_runs
from resources import DataStoreResource


def _handled(instance: dg.DagsterInstance, project: str):
    def handled(commit_id: str) -> bool:
        runs = instance.get_run_records(
            filters=dg.RunsFilter(tags={tags.PROJECT: project, tags.DATA_COMMIT: commit_id}), limit=1
        )
        return bool(runs)

    return handled


def build_data_commit_sensor(
    cfg: ProjectConfig, job: Any, *, minimum_interval_seconds: int = 15
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{cfg.name}_data_commit_sensor",
        target=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts a {cfg.name} run (scope '{cfg.dataset.on_commit}') for every new commit "
        f"of {cfg.dataset.repository}/{cfg.dataset.branch}:{cfg.dataset.path}.",
    )
    def data_commit_sensor(
        context: dg.SensorEvaluationContext, data_store: DataStoreResource
    ) -> dg.SensorResult | dg.SkipReason:
        plan = plan_data_runs(
            data_store.store(), cfg, context.cursor, already_handled=_handled(context.instance, cfg.name)
        )
        for event in plan.events:
            context.log.warning(event)
        if plan.skip_reason:
            return dg.SkipReason(plan.skip_reason)
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                tags={
                    tags.PROJECT: cfg.name,
                    tags.DATA_COMMIT: run.commit.id,
                    tags.DATA_BRANCH: run.branch,
                    tags.TRIGGER: "data_commit",
                    tags.SCOPE: str(cfg.dataset.on_commit),
                    # A reset/force-push is also reported on the run it starts (and logged above).
                    **({tags.DATA_RESET_FROM: run.reset_from} if run.reset_from else {}),
                },
            )
            for run in plan.runs
        ]
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor)

    return data_commit_sensor
