"""``<project>_rollout_sensor``: drives the live production rollout, one reconcile per tick.

Each tick: reconcile the live rollout (analyse the canary's window, then advance, hold or roll
back: ``ml_platform.cd.reconcile_rollout``), then report every history transition not reported
yet as an observation of ``<p>/production_rollout`` (phase, weight, who, why, each analysis
check), and a finished rollout as a materialization of it with the project's history. Nothing
live → a skip that says what production last did; no process is started then. A rollout
waiting for approval costs one cheap reconcile per tick and holds no run worker.
"""

import dagster as dg

from assets import metadata as md
from ml_platform import cd
from ml_platform.config import ProjectConfig
from ml_platform.errors import DeploymentError, RolloutError
from ml_platform.history import history, render_history
from ml_platform.rollout import RolloutState
from ml_platform.rollout_report import ReportCursor, transition_metadata, unreported
from resources import ModelRegistryResource, PlatformResource
from resources.notifier import NotifierResource


def _events(cfg: ProjectConfig, states: list[RolloutState], cursor: ReportCursor, history_md: str
            ) -> tuple[list[dg.AssetObservation | dg.AssetMaterialization], ReportCursor]:
    key = dg.AssetKey([cfg.name, "production_rollout"])
    todo, after = unreported(states, cursor)
    events: list[dg.AssetObservation | dg.AssetMaterialization] = []
    for item in todo:
        for t in item.transitions:
            meta = md.plain(transition_metadata(item.state, t))
            events.append(dg.AssetObservation(asset_key=key, metadata=meta))
        if item.state.terminal:
            final = transition_metadata(item.state, item.state.history[-1])
            events.append(dg.AssetMaterialization(
                asset_key=key, description=f"rollout {item.state.rollout_id}: {item.state.phase}",
                metadata=md.plain({k: v for k, v in final.items() if k != "metrics"})
                | {"history": dg.MetadataValue.md(f"```\n{history_md}\n```")},
            ))
    return events, after


def build_rollout_sensor(cfg: ProjectConfig, *, minimum_interval_seconds: int = 15) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{cfg.name}_rollout_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Analyses and advances (or rolls back) {cfg.name}'s production rollout at each tick; "
        f"every step is an observation of {cfg.name}/production_rollout.",
    )
    def rollout_sensor(
        context: dg.SensorEvaluationContext,
        platform: PlatformResource,
        model_registry: ModelRegistryResource,
        notifier: NotifierResource,
    ) -> dg.SensorResult | dg.SkipReason:
        paths, registry = platform.paths, model_registry.registry()
        store = cd.Environment(cfg.name, "production", paths).store
        cursor = ReportCursor.parse(context.cursor)
        live = store.active(cfg.name)
        if live is not None:
            try:
                state = cd.reconcile_rollout(cfg, paths, actor="rollout_sensor", registry=registry,
                                             notifier=notifier.rollout_notifier())
            except (DeploymentError, RolloutError) as e:
                raise RolloutError(f"{cfg.name} rollout {live.rollout_id}: reconcile failed: {e}") from e
            context.log.info("rollout %s: %s at %s %%", state.rollout_id, state.phase, state.canary_weight)
        states = store.list(cfg.name)
        if not states:
            return dg.SkipReason(f"{cfg.name} has no production rollout yet")
        needs_history = any(s.terminal for s in states[-2:])
        text = render_history(history(cfg, paths, registry)) if needs_history else ""
        events, after = _events(cfg, states, cursor, text)
        if not events:
            last = states[-1]
            if not last.terminal:
                return dg.SkipReason(f"rollout {last.rollout_id} of version {last.candidate_version}: "
                                     f"still {last.phase} at {last.canary_weight} % "
                                     f"({last.history[-1].reason})")
            return dg.SkipReason(f"no rollout in progress; the last one ({last.rollout_id}, version "
                                 f"{last.candidate_version}) ended {last.phase}")
        return dg.SensorResult(asset_events=events, cursor=after.dump())

    return rollout_sensor
