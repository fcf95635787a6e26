"""The composition root: builds the Definitions for every model project, lazily.

`dagster dev` (via workspace.yaml) calls :func:`defs` when it loads the code location; nothing
happens at import. Each project file in $ML_PLATFORM_PROJECTS (default ./projects) yields its own
asset graph (key prefix and group = project name), job and sensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from assets.project import build_project_assets
from ml_platform.config import ProjectConfig, load_projects
from resources import DataStoreResource, ModelRegistryResource, PlatformResource
from sensors.data_commit import build_data_commit_sensor

PROJECTS_ENV = "ML_PLATFORM_PROJECTS"
ROOT = Path(__file__).resolve().parent


def ci_job_name(cfg: ProjectConfig) -> str:
    return f"{cfg.name}_ci"


def _code_version() -> str | None:
    from ml_platform.code_version import current_code_sha

    return current_code_sha(ROOT)


def build_project_defs(
    cfg: ProjectConfig, code_version: str | None, executor: dg.ExecutorDefinition = dg.in_process_executor
) -> dg.Definitions:
    assets = build_project_assets(cfg, code_version)
    job = dg.define_asset_job(
        ci_job_name(cfg),
        selection=dg.AssetSelection.groups(cfg.name),
        # In-process: a step costs milliseconds instead of a fresh interpreter (bench/orchestration.py).
        executor_def=executor,
        tags={"ml_platform/project": cfg.name},
        description=f"CI for {cfg.name}: data gates, training, evaluation.",
    )
    return dg.Definitions(assets=assets, jobs=[job], sensors=[build_data_commit_sensor(cfg, job)])


def default_resources() -> dict[str, object]:
    return {
        # Paths resolve at run time ($ML_PLATFORM_HOME or ./.ml-platform), never at import.
        "platform": PlatformResource(),
        "data_store": DataStoreResource(),
        "model_registry": ModelRegistryResource(),
    }


def build_defs(
    projects: list[ProjectConfig], executor: dg.ExecutorDefinition = dg.in_process_executor
) -> dg.Definitions:
    code_version = _code_version()
    per_project = [build_project_defs(p, code_version, executor) for p in projects]
    return dg.Definitions.merge(*per_project, dg.Definitions(resources=default_resources()))


@dg.definitions
def defs() -> dg.Definitions:
    folder = Path(os.environ.get(PROJECTS_ENV) or ROOT / "projects")
    return build_defs(load_projects(folder))
