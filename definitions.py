"""The composition root: builds the Definitions for every model project, lazily.

`dagster dev` (via workspace.yaml) calls :func:`defs` when it loads the code location; nothing
happens at import. Each project file in $ML_PLATFORM_PROJECTS (default ./projects) yields its own
asset graph (key prefix and group = project name), job and sensors.
"""

import os
from pathlib import Path

import dagster as dg

from assets.delivery import build_approval_job, build_delivery_assets, images_enabled
from assets.jobs import build_jobs, ci_job_name, data_commit_job_name, scope_job_name
from assets.model_checks import build_model_checks
from assets.monitoring import build_monitor_assets, build_monitor_job
from assets.project import build_project_assets
from assets.promotion import build_promotion_assets
from ml_platform.config import ProjectConfig, load_projects
from ml_platform.errors import ConfigError
from resources import DataStoreResource, ModelRegistryResource, PlatformResource
from resources.delivery import DeliveryResource
from resources.notifier import notifier_resource
from sensors.alerts import build_failure_alerts_sensor
from sensors.data_commit import build_data_commit_sensor
from sensors.git_push import build_git_push_sensor
from sensors.rollout import build_rollout_sensor
from sensors.serving_monitor import build_serving_monitor_sensor

PROJECTS_ENV = "ML_PLATFORM_PROJECTS"
ROOT = Path(__file__).resolve().parent
BACKEND_ENV = "ML_PLATFORM_DATA_BACKEND"  # local (default) | lakefs
SENSOR_INTERVAL_ENV = "ML_PLATFORM_SENSOR_INTERVAL_S"  # sensors' minimum interval (bench, demos)

__all__ = ["build_defs", "build_project_defs", "ci_job_name", "defs"]


def _code_version() -> str | None:
    from ml_platform.code_version import current_code_sha

    return current_code_sha(ROOT)


def build_project_defs(
    cfg: ProjectConfig,
    code_version: str | None,
    executor: dg.ExecutorDefinition = dg.in_process_executor,
    *,
    sensor_interval_s: int | None = None,
    images_on: bool = False,
) -> dg.Definitions:
    assets = [
        *build_project_assets(cfg, code_version),
        *build_promotion_assets(cfg, code_version),
        *build_delivery_assets(cfg, code_version, images_on=images_on),
        *build_monitor_assets(cfg, code_version),
    ]
    # In-process: a step costs milliseconds instead of a fresh interpreter (bench/orchestration.py).
    ci_job, scope_jobs = build_jobs(cfg, executor)
    interval = {} if sensor_interval_s is None else {"minimum_interval_seconds": sensor_interval_s}
    jobs = {ci_job_name(cfg): ci_job, **{scope_job_name(cfg, s): j for s, j in scope_jobs.items()}}
    sensors = [build_data_commit_sensor(cfg, jobs[data_commit_job_name(cfg)], **interval)]
    monitor_job = build_monitor_job(cfg, executor)
    sensors += [
        build_rollout_sensor(cfg, **interval),
        build_serving_monitor_sensor(cfg, monitor_job, jobs[data_commit_job_name(cfg)], **interval),
    ]
    if cfg.code.remote:
        sensors.append(build_git_push_sensor(cfg, scope_jobs, **interval))
    return dg.Definitions(
        assets=assets,
        asset_checks=build_model_checks(cfg),
        jobs=[ci_job, *scope_jobs.values(), build_approval_job(cfg, executor), monitor_job],
        sensors=sensors,
    )


def data_store_resource(backend: str) -> DataStoreResource:
    """The data store resource; lakeFS endpoint and credentials only ever via dg.EnvVar."""
    if backend == "local":
        return DataStoreResource()
    if backend == "lakefs":
        from ml_platform.data import lakefs_store as lk

        return DataStoreResource(
            backend="lakefs",
            lakefs_endpoint=dg.EnvVar(lk.ENV_ENDPOINT),
            lakefs_access_key_id=dg.EnvVar(lk.ENV_ACCESS_KEY_ID),
            lakefs_secret_access_key=dg.EnvVar(lk.ENV_SECRET_ACCESS_KEY),
        )
    raise ConfigError(f"unknown data backend '{backend}'; use 'local' or 'lakefs'", field=BACKEND_ENV)


def default_resources(backend: str = "local") -> dict[str, object]:
    return {
        # Paths resolve at run time ($ML_PLATFORM_HOME or ./.ml-platform), never at import.
        "platform": PlatformResource(),
        "data_store": data_store_resource(backend),
        "model_registry": ModelRegistryResource(),
        "notifier": notifier_resource(),  # webhook via dg.EnvVar when configured, else a file
        "delivery": DeliveryResource(),  # $ML_PLATFORM_REGISTRY, $ML_PLATFORM_BASE_IMAGE at run time
    }


def _sensor_interval_s() -> int | None:
    raw = os.environ.get(SENSOR_INTERVAL_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"must be a whole number of seconds >= 1, got '{raw}'", field=SENSOR_INTERVAL_ENV)
    return int(raw)


def build_defs(
    projects: list[ProjectConfig],
    executor: dg.ExecutorDefinition = dg.in_process_executor,
    *,
    backend: str | None = None,
) -> dg.Definitions:
    """Every project's graph, jobs and sensors plus the shared resources. Reads the environment
    here (definitions build), never at import: the backend, the sensor interval and whether
    model images are built (ML_PLATFORM_IMAGES, default: when a Docker engine answers)."""
    code_version = _code_version()
    interval = _sensor_interval_s()
    images_on = images_enabled()
    per_project = [
        build_project_defs(p, code_version, executor, sensor_interval_s=interval, images_on=images_on)
        for p in projects
    ]
    chosen = backend or os.environ.get(BACKEND_ENV) or "local"
    shared = dg.Definitions(resources=default_resources(chosen), sensors=[build_failure_alerts_sensor()])
    return dg.Definitions.merge(*per_project, shared)


@dg.definitions
def defs() -> dg.Definitions:
    folder = Path(os.environ.get(PROJECTS_ENV) or ROOT / "projects")
    return build_defs(load_projects(folder))
