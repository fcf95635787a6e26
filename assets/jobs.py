"""One asset job per branch scope, plus the data-CI job, for each project.

A scope runs its own stage and every stage before it (ml_platform.scopes):

| job                 | started by                           | materializes                        |
| ------------------- | ------------------------------------ | ----------------------------------- |
| ``<p>_ci``          | data commits (data_commit_sensor)    | stage ci                            |
| ``<p>_validate``    | pushes to feature/* (git_push_sensor) | stage ci                            |
| ``<p>_staging``     | pushes to main                        | stages ci + staging                 |
| ``<p>_production``  | pushes to release/* or a tag          | stages ci + staging + production    |

Selections are written as "the project's group minus every later stage", where a later stage
is both the asset tag ``ml_platform/stage`` and the CD asset names of ARCHITECTURE.md
(``model_image``, ``staging_deployment``, ``production_rollout``; key prefixes, so they may not
exist yet). An asset added later with neither tag nor one of those names counts as ci. The
scope is in the job name (visible in the UI's run list) and in the run tag ``ml_platform/scope``.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets import tags
from ml_platform.config import BranchScope, ProjectConfig
from ml_platform.scopes import STAGE_OF_CD_ASSET, Stage, stages_for


def ci_job_name(cfg: ProjectConfig) -> str:
    return f"{cfg.name}_ci"


def scope_job_name(cfg: ProjectConfig, scope: BranchScope) -> str:
    return f"{cfg.name}_{scope.value}"


def data_commit_job_name(cfg: ProjectConfig) -> str:
    """The job a new data commit starts: ``<p>_ci`` for data CI only (``dataset.on_commit:
    validate``), else the scope job that goes on to staging or production."""
    if cfg.dataset.on_commit is BranchScope.VALIDATE:
        return ci_job_name(cfg)
    return scope_job_name(cfg, cfg.dataset.on_commit)


def _stage_members(cfg: ProjectConfig, stage: Stage) -> dg.AssetSelection:
    named = [[cfg.name, name] for name, s in STAGE_OF_CD_ASSET.items() if s is stage]
    selection = dg.AssetSelection.tag(tags.STAGE, stage.value)
    return selection | dg.AssetSelection.key_prefixes(*named) if named else selection


def stages_selection(cfg: ProjectConfig, stages: tuple[Stage, ...]) -> dg.AssetSelection:
    """The project's assets in ``stages``: its group minus the members of every other stage."""
    selection = dg.AssetSelection.groups(cfg.name)
    for stage in Stage:
        if stage is not Stage.CI and stage not in stages:
            selection = selection - _stage_members(cfg, stage)
    return selection


# define_asset_job returns an UnresolvedAssetJobDefinition, which dagster does not export.
AssetJob = Any


def build_jobs(
    cfg: ProjectConfig, executor: dg.ExecutorDefinition
) -> tuple[AssetJob, Mapping[BranchScope, AssetJob]]:
    """The data-CI job and the job of each branch scope."""
    project_tags = {tags.PROJECT: cfg.name}
    ci = dg.define_asset_job(
        ci_job_name(cfg),
        selection=stages_selection(cfg, (Stage.CI,)),
        executor_def=executor,
        tags=project_tags,
        description=f"CI for {cfg.name} on a data commit: data gates, training, evaluation.",
    )
    scopes = {
        scope: dg.define_asset_job(
            scope_job_name(cfg, scope),
            selection=stages_selection(cfg, stages_for(scope)),
            executor_def=executor,
            tags={**project_tags, tags.SCOPE: scope.value},
            description=f"{cfg.name}, git push in scope '{scope.value}': stages "
            f"{', '.join(s.value for s in stages_for(scope))}.",
        )
        for scope in BranchScope
    }
    return ci, scopes
