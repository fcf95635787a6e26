"""``<project>_git_push_sensor``: one run per pushed commit, in the job of its branch's scope.

The decision is ``ml_platform.code_source.plan_runs`` (cursor = last sha per branch, run key =
``<sha>:<scope>``); this adapter lists the remote's heads, pins the data commit (the head of the
project's data branch at request time) and turns each planned run into a RunRequest. Every run
therefore knows exactly one code sha and one data commit.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from assets import tags
from assets.jobs import scope_job_name
from ml_platform.code_source import GitRemote, PushCursor, PushEventKind, plan_runs
from ml_platform.config import BranchScope, ProjectConfig
from ml_platform.errors import ConfigError, NotFoundError
from resources import DataStoreResource, PlatformResource

_QUIET = {PushEventKind.BRANCH_CREATED}


def git_cache_dir(platform: PlatformResource) -> Path:
    return platform.paths.home / "git-cache"


def build_git_push_sensor(
    cfg: ProjectConfig,
    jobs: Mapping[BranchScope, Any],
    *,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    remote_url = cfg.code.remote
    if not remote_url:
        raise ConfigError(f"project '{cfg.name}' has no code.remote: it gets no git_push_sensor")
    patterns = [rule.pattern for rule in cfg.code.branches]

    @dg.sensor(
        name=f"{cfg.name}_git_push_sensor",
        jobs=list(jobs.values()),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts a {cfg.name} run per commit pushed to a branch matching "
        f"{patterns}, in the job of the branch's scope.",
    )
    def git_push_sensor(
        context: dg.SensorEvaluationContext,
        data_store: DataStoreResource,
        platform: PlatformResource,
    ) -> dg.SensorResult | dg.SkipReason:
        remote = GitRemote(remote_url, git_cache_dir(platform))
        plan = plan_runs(
            PushCursor.from_json(context.cursor),
            remote.heads(patterns),
            cfg.code.branches,
            remote.new_commits,
        )
        for event in plan.events:
            (context.log.info if event.kind in _QUIET else context.log.warning)(event.message)
        if not plan.runs:
            return dg.SensorResult(cursor=plan.cursor.to_json(), skip_reason="no new pushes")
        try:
            data_commit = data_store.store().branch_head(cfg.dataset.repository, cfg.dataset.branch)
        except NotFoundError as e:
            # Keep the old cursor: the pushes are run once there is data to run them on.
            return dg.SkipReason(f"no data to pin for {len(plan.runs)} pushed commit(s): {e}")
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                job_name=scope_job_name(cfg, run.scope),
                tags={
                    tags.PROJECT: cfg.name,
                    tags.CODE_SHA: run.sha,
                    tags.CODE_BRANCH: run.branch,
                    tags.SCOPE: run.scope.value,
                    tags.DATA_COMMIT: data_commit,
                    tags.DATA_BRANCH: cfg.dataset.branch,
                    tags.TRIGGER: "git_push",
                },
            )
            for run in plan.runs
        ]
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor.to_json())

    return git_push_sensor
