"""``<p>/serving_monitor``: is production still fit for its traffic, and should it be retrained?

Started by ``<p>_serving_monitor_sensor`` (stage ``operate``: no branch scope runs it) when the
model servers have logged enough new inputs. One call to :func:`ml_platform.pipeline.
monitor_snapshot`: Evidently drift of the logged live inputs against the champion's training
rows, the router's error budget and live accuracy from label feedback. Its non-blocking check
``live_healthy`` shows each of them; ``retrain=True`` in the metadata is what the sensor acts on.
"""

from typing import Any

import dagster as dg

from assets import metadata as md
from assets import tags
from assets.project import asset_key
from ml_platform import pipeline
from ml_platform.config import GateMode, ProjectConfig
from ml_platform.gates import Verdict
from ml_platform.scopes import Stage
from resources import DataStoreResource, ModelRegistryResource, PlatformResource

ASSET = "serving_monitor"


def monitor_job_name(cfg: ProjectConfig) -> str:
    return f"{cfg.name}_serving_monitor"


def _healthy(outcome: pipeline.MonitorOutcome) -> Verdict:
    result = outcome.result
    return Verdict(gate="live_healthy", passed=result.status != "unhealthy", mode=GateMode.WARNING,
                   message=f"{result.status}: {result.reason}",
                   details={c.name: f"{c.status}: {c.message}" for c in result.checks})


def build_monitor_assets(cfg: ProjectConfig, code_version: str | None) -> list[Any]:
    key = asset_key(cfg, ASSET)
    spec = dg.AssetCheckSpec("live_healthy", asset=key, blocking=False,
                             description="Live input drift, error budget and live accuracy of production.")

    @dg.asset(
        key=key, check_specs=[spec], group_name=cfg.name, code_version=code_version,
        tags=tags.stage_tags(Stage.OPERATE), kinds={"evidently"},
        description="Production's logged live inputs vs the champion's training data (Evidently), the "
        "router's error budget and live accuracy; says whether to retrain.",
    )
    def serving_monitor(
        context: dg.AssetExecutionContext,
        platform: PlatformResource,
        data_store: DataStoreResource,
        model_registry: ModelRegistryResource,
    ) -> Any:
        outcome = pipeline.monitor_snapshot(cfg, data_store.store(), model_registry.registry(),
                                           platform.paths)
        context.log.info("serving monitor of %s: %s", cfg.name, outcome.result.reason)
        meta = md.plain(outcome.metadata()) | md.report_links(
            outcome.paths, platform.reports_base_url, platform.paths.reports)
        yield dg.Output(outcome.result.status, metadata=meta)
        yield md.check_result(_healthy(outcome), kind="model",
                              extra={"model_version": outcome.champion_version})

    return [serving_monitor]


def build_monitor_job(cfg: ProjectConfig, executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(
        monitor_job_name(cfg), selection=dg.AssetSelection.assets(asset_key(cfg, ASSET)),
        executor_def=executor, tags={tags.PROJECT: cfg.name},
        description=f"Monitor {cfg.name}'s production traffic (drift, errors, live accuracy).",
    )
