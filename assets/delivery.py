"""Continuous delivery of one project: image, staging, production rollout, approval.

| asset                     | stage      | does                                                   |
| ------------------------- | ---------- | ------------------------------------------------------ |
| ``<p>/model_image``       | staging    | builds + pushes the model image; image_size,           |
|                           |            | container_smoke, no_secrets_in_image (blocking)        |
| ``<p>/staging_deployment``| staging    | serves the candidate in staging; staging_smoke         |
| ``<p>/production_rollout``| production | starts the canary / blue-green rollout (or the first   |
|                           |            | deployment); ``<p>_rollout_sensor`` drives it on        |
| ``<p>/rollout_approval``  | operate    | an operator approves (or aborts) a waiting rollout,     |
|                           |            | with who and why in the run config                      |

Every asset first calls :func:`assets.promotion.require_promotable`: nothing is built, deployed
or rolled out for a version whose latest decision is not PROMOTE, whichever job runs it.
``model_image`` is in the graph only when a Docker engine is there (``ML_PLATFORM_IMAGES``:
``auto`` = if the engine answers, ``on``, ``off``); deployments run the model from MLflow on
the local-process deployer either way, so the embedded defaults need no Docker.
"""

import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import dagster as dg
import pandas as pd

from assets import metadata as md
from assets import tags
from assets.project import asset_key
from assets.promotion import require_promotable
from ml_platform import cd, images, model_ci, pipeline, training
from ml_platform.config import ProjectConfig
from ml_platform.errors import ConfigError, GateRefusal
from ml_platform.history import history, render_history
from ml_platform.rollout import RolloutState
from ml_platform.scopes import Stage
from ml_platform.staging import records
from resources import ModelRegistryResource, PlatformResource
from resources.delivery import IMAGES_ENV, DeliveryResource
from resources.notifier import NotifierResource

GOLDEN_ROWS = 20
SMOKE_SAMPLE_ROWS = 5
_ImagesMode = Literal["auto", "on", "off"]


def images_mode(environ: Mapping[str, str] | None = None) -> _ImagesMode:
    raw = (os.environ if environ is None else environ).get(IMAGES_ENV, "auto").strip().lower() or "auto"
    if raw not in ("auto", "on", "off"):
        raise ConfigError(f"must be auto, on or off, got '{raw}'", field=IMAGES_ENV)
    return raw  # type: ignore[return-value]


def docker_engine_answers() -> bool:
    """Is a Docker engine reachable (DOCKER_HOST or the default socket)? Never raises."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission: no images in the graph
        return False


def images_enabled(environ: Mapping[str, str] | None = None) -> bool:
    mode = images_mode(environ)
    return mode == "on" or (mode == "auto" and docker_engine_answers())


def golden_rows(cfg: ProjectConfig, snapshot: pipeline.DataSnapshot, n: int = GOLDEN_ROWS) -> pd.DataFrame:
    """The first ``n`` holdout rows of the pinned data commit (features only): the rows whose
    served predictions must equal the in-process ones."""
    _, holdout = training.split_holdout(snapshot.frame, cfg)
    return holdout[cfg.training_features].head(n).reset_index(drop=True)


def require_staging_passed(instance: dg.DagsterInstance, cfg: ProjectConfig, version: int) -> None:
    """Raise GateRefusal unless the latest staging_smoke of ``version`` passed (any run)."""
    key = dg.AssetCheckKey(asset_key(cfg, "staging_deployment"), "staging_smoke")
    for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=25):
        ev = rec.evaluation
        if ev is None or str(getattr(ev.metadata.get("model_version"), "value", "")) != str(version):
            continue
        if ev.passed:
            return
        raise GateRefusal(f"{cfg.name} version {version} failed staging_smoke in run "
                          f"{rec.run_id}: {ev.description}; fix it and re-run the staging stage")
    raise GateRefusal(f"{cfg.name} version {version} has no staging_smoke result; materialize "
                      f"{cfg.name}/staging_deployment for it before the production rollout")


def rollout_metadata(state: RolloutState, status: cd.RolloutStatus | None = None) -> dict[str, Any]:
    """Dagster metadata of a rollout's current state (and production's, when ``status``)."""
    last = state.history[-1]
    out: dict[str, Any] = {
        "rollout_id": state.rollout_id, "phase": str(state.phase), "canary_weight": state.canary_weight,
        "candidate_version": state.candidate_version, "stable_version": state.stable_version,
        "strategy": state.spec.strategy, "last_reason": last.reason, "last_actor": last.actor,
    }
    if status is not None:
        out |= {"router": status.router_url or "not running"}
    meta = md.plain(out)
    if status is not None:  # a {variant: percent} dict would otherwise render as a table
        meta["weights"] = md.json_value(status.weights)
    return meta


def _history_md(cfg: ProjectConfig, paths: Any, registry: Any) -> dg.MetadataValue:
    text = render_history(history(cfg, paths, registry))
    return dg.MetadataValue.md(f"```\n{text}\n```")


class ApprovalConfig(dg.Config):
    """Who decides, why, and what: approve a rollout waiting for approval, or abort it."""

    approver: str
    reason: str
    action: Literal["approve", "abort"] = "approve"


def build_delivery_assets(cfg: ProjectConfig, code_version: str | None, *, images_on: bool) -> list[Any]:
    group = cfg.name

    def key(name: str) -> dg.AssetKey:
        return asset_key(cfg, name)

    def common(stage: Stage) -> dict[str, Any]:
        return {"group_name": group, "code_version": code_version, "tags": tags.stage_tags(stage)}

    out: list[Any] = []
    if images_on:
        out.append(_model_image_asset(cfg, key, common(Stage.STAGING)))
    staging_after = key("model_image") if images_on else key("promotion_decision")
    out += [
        _staging_asset(cfg, key, staging_after, common(Stage.STAGING)),
        _production_asset(cfg, key, common(Stage.PRODUCTION)),
        _approval_asset(cfg, key, common(Stage.OPERATE)),
    ]
    return out


def _model_image_asset(cfg: ProjectConfig, key: Any, common: dict[str, Any]) -> Any:
    specs = [
        dg.AssetCheckSpec(name, asset=key("model_image"), blocking=True, description=text)
        for name, text in (
            ("image_size", "The image's uncompressed size is within the budget."),
            ("container_smoke", "The container starts, is ready, and predicts exactly what the model "
                                "predicts in-process."),
            ("no_secrets_in_image", "No configured secret value and no private key in any layer."),
        )
    ]

    @dg.asset(
        key=key("model_image"),
        ins={"candidate_model": dg.AssetIn(key=key("candidate_model")),
             "training_data": dg.AssetIn(key=key("training_data"))},
        deps=[key("promotion_decision")],
        check_specs=specs,
        kinds={"docker"},
        description="The promoted model in a container image (non-root, OCI labels), pushed to the "
        "configured registry.",
        **common,
    )
    def model_image(
        context: dg.AssetExecutionContext,
        candidate_model: pipeline.Candidate,
        training_data: pipeline.DataSnapshot,
        delivery: DeliveryResource,
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        ref = candidate_model.ref
        require_promotable(context.instance, cfg.name, ref.version)
        client = delivery.docker_client()
        try:
            base = images.ensure_base_image(client, configured=delivery.base_image_ref() or None)
            built = images.build_model_image(
                client, ref, project=cfg.name, git_sha=candidate_model.code_sha,
                data_commit=candidate_model.data_commit, base_image=base,
                registry=delivery.registry_address(),
            )
            sample = records(golden_rows(cfg, training_data, SMOKE_SAMPLE_ROWS))
            verdicts = [
                images.check_image_size(client, built, limit_bytes=delivery.image_size_limit_mb * 1_000_000),
                images.check_container_smoke(client, built, model_dir=ref.artifact_path,
                                             model_digest=ref.digest or "", sample=sample),
                images.check_no_secrets(client, built, secrets=delivery.secret_values()),
            ]
        finally:
            client.close()
        meta = {"image": built.reference, "pinned": built.pinned, "size_mb": round(built.size_bytes / 1e6, 1),
                "base_image": base.tag, "base_image_built_now": base.built,
                "registry": delivery.registry_address() or "none (local image only)",
                **model_ci.provenance(candidate_model)}
        yield dg.Output(built.pinned, metadata=md.plain(meta) | {"labels": md.json_value(dict(built.labels))})
        for v in verdicts:
            yield md.check_result(v, kind="delivery", extra=model_ci.provenance(candidate_model))

    return model_image


def _staging_asset(cfg: ProjectConfig, key: Any, after: dg.AssetKey, common: dict[str, Any]) -> Any:
    smoke = dg.AssetCheckSpec(
        "staging_smoke", asset=key("staging_deployment"), blocking=True,
        description="Through the staging router: health, golden predictions identical to "
        "in-process ones, p95 latency within rollout.analysis.max_p95_latency_ms.",
    )

    @dg.asset(
        key=key("staging_deployment"),
        ins={"candidate_model": dg.AssetIn(key=key("candidate_model")),
             "training_data": dg.AssetIn(key=key("training_data"))},
        deps=[after],
        check_specs=[smoke],
        kinds={"python"},
        description="The candidate served in staging (router + model server on loopback).",
        **common,
    )
    def staging_deployment(
        context: dg.AssetExecutionContext,
        candidate_model: pipeline.Candidate,
        training_data: pipeline.DataSnapshot,
        platform: PlatformResource,
        model_registry: ModelRegistryResource,
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        ref = candidate_model.ref
        require_promotable(context.instance, cfg.name, ref.version)
        endpoint = cd.deploy_staging(cfg, ref, platform.paths)
        golden = golden_rows(cfg, training_data)
        expected = cd.golden_scores(model_registry.registry(), ref, golden)
        verdict = cd.staging_smoke(endpoint, golden, expected,
                                   latency_budget_ms=cfg.rollout.analysis.max_p95_latency_ms)
        meta = {"router": endpoint.url, "server": endpoint.server.url,
                "model_version": ref.version, "environment": "staging"}
        yield dg.Output(endpoint.url, metadata=md.plain(meta | model_ci.provenance(candidate_model)))
        yield md.check_result(verdict, kind="delivery", extra=model_ci.provenance(candidate_model))

    return staging_deployment


def _production_asset(cfg: ProjectConfig, key: Any, common: dict[str, Any]) -> Any:
    @dg.asset(
        key=key("production_rollout"),
        ins={"candidate_model": dg.AssetIn(key=key("candidate_model")),
             "training_data": dg.AssetIn(key=key("training_data"))},
        deps=[key("staging_deployment")],
        kinds={"python"},
        description=f"Starts the {cfg.rollout.strategy} rollout of the candidate in production (a first "
        f"deployment goes straight to 100 % after a smoke check). {cfg.name}_rollout_sensor "
        "analyses and advances it; its observations and final materialization show every step.",
        **common,
    )
    def production_rollout(
        context: dg.AssetExecutionContext,
        candidate_model: pipeline.Candidate,
        training_data: pipeline.DataSnapshot,
        platform: PlatformResource,
        model_registry: ModelRegistryResource,
        notifier: NotifierResource,
    ) -> dg.Output[Any]:
        ref = candidate_model.ref
        require_promotable(context.instance, cfg.name, ref.version)
        require_staging_passed(context.instance, cfg, ref.version)
        registry = model_registry.registry()
        state = cd.start_rollout(cfg, ref, None, platform.paths, actor=f"run {context.run_id[:8]}",
                                 registry=registry, smoke_rows=golden_rows(cfg, training_data),
                                 notifier=notifier.rollout_notifier())
        context.log.info("rollout %s: %s at %s %%", state.rollout_id, state.phase, state.canary_weight)
        meta = rollout_metadata(state, cd.rollout_status(cfg, platform.paths))
        return dg.Output(state.rollout_id, metadata=meta | md.plain(model_ci.provenance(candidate_model))
                         | {"history": _history_md(cfg, platform.paths, registry)})

    return production_rollout


def _approval_asset(cfg: ProjectConfig, key: Any, common: dict[str, Any]) -> Any:
    @dg.asset(
        key=key("rollout_approval"),
        deps=[key("production_rollout")],
        kinds={"python"},
        description="Approve (or abort) the production rollout waiting for approval: set approver and "
        "reason in the launchpad config. Same as `ml-platform approve`.",
        **common,
    )
    def rollout_approval(
        context: dg.AssetExecutionContext,
        config: ApprovalConfig,
        platform: PlatformResource,
        model_registry: ModelRegistryResource,
        notifier: NotifierResource,
    ) -> dg.Output[Any]:
        act = cd.approve if config.action == "approve" else cd.abort
        state = act(cfg, platform.paths, config.approver, config.reason,
                    registry=model_registry.registry(), notifier=notifier.rollout_notifier())
        context.log.info("%s by %s: rollout %s is now %s", config.action, config.approver,
                         state.rollout_id, state.phase)
        meta = rollout_metadata(state) | md.plain({"action": config.action, "by": config.approver,
                                                   "reason": config.reason})
        return dg.Output(state.rollout_id, metadata=meta)

    return rollout_approval


def approval_job_name(cfg: ProjectConfig) -> str:
    return f"{cfg.name}_rollout_approval"


def build_approval_job(cfg: ProjectConfig, executor: dg.ExecutorDefinition) -> Any:
    return dg.define_asset_job(
        approval_job_name(cfg), selection=dg.AssetSelection.assets(asset_key(cfg, "rollout_approval")),
        executor_def=executor, tags={tags.PROJECT: cfg.name},
        description=f"Approve or abort {cfg.name}'s production rollout (approver + reason in the config).",
    )
