"""One asset graph per model project: data commit → gates → model → evaluation.

Every asset is a short adapter: it calls one function of ``ml_platform.pipeline`` and turns the
result into Dagster metadata. Gates that an asset computes itself are declared as check specs on
that asset (one computation, the check result yielded beside the output); blocking gates stop
everything downstream in the run.
"""


from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from assets import metadata as md
from assets import tags
from ml_platform import model_ci, pipeline
from ml_platform.config import GateMode, ProjectConfig
from ml_platform.scopes import Stage
from resources import DataStoreResource, ModelRegistryResource, PlatformResource


def asset_key(cfg: ProjectConfig, name: str) -> dg.AssetKey:
    return dg.AssetKey([cfg.name, name])


def gate_spec(cfg: ProjectConfig, gate: str, asset: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=gate,
        asset=asset_key(cfg, asset),
        blocking=cfg.gates.mode(gate) is GateMode.BLOCKING,
        description=description,
    )


def _enabled(cfg: ProjectConfig, gates: Sequence[dg.AssetCheckSpec]) -> list[dg.AssetCheckSpec]:
    return [g for g in gates if cfg.gates.mode(g.name) is not GateMode.OFF]


def _emit(
    specs: Sequence[dg.AssetCheckSpec],
    verdicts: Sequence[Any],
    extra: Mapping[str, Any],
    kind: md.GateKind = "data",
) -> Iterator[dg.AssetCheckResult]:
    """``extra`` names what the verdict judged (data commit, model version): the promotion
    decision matches recorded verdicts to a candidate by it. Severity: md.report_severity."""
    wanted = {s.name for s in specs}
    for v in verdicts:
        if v.gate in wanted:
            yield md.check_result(v, kind=kind, extra=extra)


def _code_provenance(
    context: dg.AssetExecutionContext, code_version: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Metadata and materialization tags naming the code sha this materialization ran.

    ``code_version`` on the definition is static (the code server's checkout); a git-push run
    is pinned to its own sha, so the sha is recorded per materialization as well."""
    sha = tags.code_sha_of_run(context.run.tags, code_version)
    return {"code_sha": sha}, {tags.CODE_SHA: sha}


def build_project_assets(cfg: ProjectConfig, code_version: str | None) -> list[Any]:
    """The assets (with their in-asset checks) of one project, under key prefix and group = name."""
    group = cfg.name
    # Every asset here is in the CI stage: validate, smoke-train, evaluate, report (scopes.py).
    common: dict[str, Any] = {
        "group_name": group,
        "code_version": code_version,
        "tags": tags.stage_tags(Stage.CI),
    }

    def key(name: str) -> dg.AssetKey:
        return asset_key(cfg, name)

    row_specs = _enabled(cfg, [gate_spec(cfg, "row_count", "training_data", f"At least {cfg.gates.min_rows} rows.")])

    @dg.asset(
        key=key("training_data"),
        check_specs=row_specs,
        description=f"The {cfg.dataset.path} table at the data commit this run is pinned to.",
        kinds={"pandas"},
        **common,
    )
    def training_data(
        context: dg.AssetExecutionContext, data_store: DataStoreResource
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        snap = pipeline.load_snapshot(data_store.store(), cfg, tags.pinned_data_commit(context.run.tags))
        code_md, code_tags = _code_provenance(context, code_version)
        yield dg.Output(
            snap,
            data_version=dg.DataVersion(snap.commit.id),
            metadata=md.plain(pipeline.snapshot_summary(snap) | code_md),
            tags=code_tags,
        )
        yield from _emit(row_specs, [pipeline.row_count_verdict(snap, cfg)], {"data_commit": snap.commit.id})

    schema_specs = _enabled(
        cfg, [gate_spec(cfg, "schema_valid", "validation_report", "Pandera schema from the project config, lazy.")]
    )

    @dg.asset(
        key=key("validation_report"),
        ins={"training_data": dg.AssetIn(key=key("training_data"))},
        check_specs=schema_specs,
        description="Schema and quality validation of the training data (Pandera, every failure case).",
        kinds={"pandera"},
        **common,
    )
    def validation_report(
        context: dg.AssetExecutionContext, training_data: pipeline.DataSnapshot, platform: PlatformResource
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        outcome = pipeline.validate_snapshot(training_data, cfg, platform.paths.reports)
        code_md, code_tags = _code_provenance(context, code_version)
        yield dg.Output(
            outcome.summary,
            data_version=dg.DataVersion(training_data.commit.id),
            metadata=md.plain(outcome.metadata() | code_md)
            | md.report_links(outcome.paths, platform.reports_base_url, platform.paths.reports),
            tags=code_tags,
        )
        yield from _emit(schema_specs, [outcome.verdict], {"data_commit": training_data.commit.id})

    drift_specs = _enabled(
        cfg, [gate_spec(cfg, "no_drift", "drift_report", "Evidently drift vs the champion's training data.")]
    )

    @dg.asset(
        key=key("drift_report"),
        ins={"training_data": dg.AssetIn(key=key("training_data"))},
        check_specs=drift_specs,
        description="Feature drift of the training data against the reference (the champion's training data, "
        "or the first commit).",
        kinds={"evidently"},
        **common,
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        training_data: pipeline.DataSnapshot,
        data_store: DataStoreResource,
        model_registry: ModelRegistryResource,
        platform: PlatformResource,
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        outcome = pipeline.drift_snapshot(
            training_data, cfg, data_store.store(), model_registry.registry(), platform.paths.reports
        )
        code_md, code_tags = _code_provenance(context, code_version)
        yield dg.Output(
            outcome.summary,
            data_version=dg.DataVersion(training_data.commit.id),
            metadata=md.plain(outcome.metadata() | code_md)
            | md.report_links(outcome.paths, platform.reports_base_url, platform.paths.reports),
            tags=code_tags,
        )
        yield from _emit(drift_specs, [outcome.verdict], {"data_commit": training_data.commit.id})

    @dg.asset(
        key=key("candidate_model"),
        ins={"training_data": dg.AssetIn(key=key("training_data"))},
        deps=[key("validation_report"), key("drift_report")],
        description="A scikit-learn pipeline trained on the pinned data, logged and registered in MLflow "
        "(alias 'challenger').",
        kinds={"scikitlearn", "mlflow"},
        # Registers a version and moves the 'challenger' alias: one writer per project at a time.
        pool=tags.registry_pool(cfg.name),
        **common,
    )
    def candidate_model(
        context: dg.AssetExecutionContext,
        training_data: pipeline.DataSnapshot,
        model_registry: ModelRegistryResource,
    ) -> dg.Output[Any]:
        candidate = pipeline.train_candidate(
            training_data,
            cfg,
            model_registry.registry(),
            code_sha=tags.code_sha_of_run(context.run.tags, code_version),
            run_tags={"dagster_run_id": context.run_id, "dagster_asset": "candidate_model"},
        )
        code_md, code_tags = _code_provenance(context, code_version)
        return dg.Output(
            candidate,
            data_version=dg.DataVersion(candidate.ref.digest),
            metadata=md.plain(candidate.metadata() | code_md),
            tags=code_tags,
        )

    threshold_specs = _enabled(
        cfg, [gate_spec(cfg, "metric_thresholds", "evaluation", "Holdout metrics against the configured bounds.")]
    )

    @dg.asset(
        key=key("evaluation"),
        ins={
            "training_data": dg.AssetIn(key=key("training_data")),
            "candidate_model": dg.AssetIn(key=key("candidate_model")),
        },
        check_specs=threshold_specs,
        description="Holdout metrics of the registered candidate (loaded back from MLflow, digest-checked).",
        kinds={"mlflow"},
        **common,
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        training_data: pipeline.DataSnapshot,
        candidate_model: pipeline.Candidate,
        model_registry: ModelRegistryResource,
        platform: PlatformResource,
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        outcome = pipeline.evaluate_candidate(
            training_data, candidate_model, cfg, model_registry.registry(), platform.paths.reports
        )
        code_md, code_tags = _code_provenance(context, code_version)
        yield dg.Output(
            outcome,
            metadata=md.plain(outcome.metadata() | code_md)
            | md.report_links(outcome.paths, platform.reports_base_url, platform.paths.reports),
            tags=code_tags,
        )
        provenance = model_ci.provenance(candidate_model)
        yield from _emit(threshold_specs, [outcome.verdict], provenance, kind="model")

    return [training_data, validation_report, drift_report, candidate_model, evaluation]
