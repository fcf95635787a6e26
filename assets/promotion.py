"""``<p>/promotion_decision``: PROMOTE / HOLD / REJECT from the gate verdicts recorded in Dagster.

The asset reads the latest check evaluations of the project's gates from the *instance* (not
from values of this run), keeps those that belong to the candidate's model version (data gates:
its data commit), and lets :func:`ml_platform.promotion.decide_promotion` decide, tag the MLflow
version and, on PROMOTE, move the ``champion`` alias. Its blocking check ``promotable`` is THE
gate of the run: ERROR unless PROMOTE. :func:`require_promotable` carries it across runs: every
later asset (image, deployment, rollout) calls it before doing anything.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from assets import metadata as md
from assets.project import asset_key
from ml_platform import model_ci, pipeline, promotion
from ml_platform.config import ProjectConfig
from ml_platform.model_gates import Decision
from ml_platform.promotion import DecisionRecord, GateRecord
from resources import ModelRegistryResource

ASSET = "promotion_decision"
_HISTORY = 25  # recent evaluations per check searched for the candidate's version
_GATE_ASSETS: Mapping[str, str] = {**model_ci.DATA_GATES, **model_ci.MODEL_GATE_ASSETS}


def _value(metadata: Mapping[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float, str)) and str(value).isdigit() else None


def gate_records(instance: dg.DagsterInstance, cfg: ProjectConfig) -> dict[str, list[GateRecord]]:
    """Recent recorded evaluations of every enabled gate of ``cfg``, newest first."""
    out: dict[str, list[GateRecord]] = {}
    for gate in promotion.expected_gates(cfg):
        key = dg.AssetCheckKey(asset_key(cfg, _GATE_ASSETS[gate]), gate)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=_HISTORY)
        out[gate] = [
            GateRecord(
                verdict=md.verdict_from_check(gate, ev.passed, ev.metadata),
                run_id=rec.run_id,
                model_version=_int_or_none(_value(ev.metadata, "model_version")),
                data_commit=_value(ev.metadata, "data_commit"),
            )
            for rec in history
            # a check that was planned but never ran (its run stopped earlier) has no verdict
            if rec.event is not None
            and rec.event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and (ev := rec.evaluation) is not None
        ]
    return out


def decision_records(instance: dg.DagsterInstance, project: str, limit: int = 100) -> list[DecisionRecord]:
    """Recorded promotion decisions of ``project``, newest first (from its materializations)."""
    result = instance.fetch_materializations(dg.AssetKey([project, ASSET]), limit=limit)
    records = []
    for rec in result.records:
        meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
        version = _int_or_none(_value(meta, "model_version"))
        if version is None:
            continue
        failed = str(_value(meta, "failed_gates") or "")
        records.append(
            DecisionRecord(
                project=project,
                model_version=version,
                decision=Decision(str(_value(meta, "decision"))),
                failed_gates=tuple(g for g in failed.split(", ") if g and g != "none"),
                reason=str(_value(meta, "reason") or ""),
                run_id=rec.run_id,
            )
        )
    return records


def require_promotable(
    source: dg.DagsterInstance | Sequence[DecisionRecord], project: str, version: int
) -> DecisionRecord:
    """Raise GateRefusal (naming the failed gates) unless ``version``'s latest decision is PROMOTE.

    Call it first in every asset after the decision, with ``context.instance``."""
    records = decision_records(source, project) if isinstance(source, dg.DagsterInstance) else source
    return promotion.require_promotable(records, project, version)


def build_promotion_assets(cfg: ProjectConfig, code_version: str | None) -> list[Any]:
    key = asset_key(cfg, ASSET)
    promotable = dg.AssetCheckSpec(
        name=promotion.PROMOTABLE,
        asset=key,
        blocking=True,
        description="The decision is PROMOTE. Anything else stops every later step of the run.",
    )

    @dg.asset(
        key=key,
        ins={"candidate_model": dg.AssetIn(key=asset_key(cfg, "candidate_model"))},
        deps=[asset_key(cfg, "evaluation")],
        check_specs=[promotable],
        group_name=cfg.name,
        code_version=code_version,
        kinds={"mlflow"},
        description="PROMOTE / HOLD / REJECT for the candidate, from every gate's recorded verdict, with the "
        "evidence; tagged on the MLflow model version.",
    )
    def promotion_decision(
        context: dg.AssetExecutionContext,
        candidate_model: pipeline.Candidate,
        model_registry: ModelRegistryResource,
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        decision = promotion.decide_promotion(
            cfg,
            candidate_model,
            gate_records(context.instance, cfg),
            model_registry.registry(),
            run_id=context.run_id,
        )
        yield dg.Output(decision.record(), metadata=md.plain(decision.summary()))
        yield md.check_result(
            decision.promotable_verdict(), kind="promotion", extra=model_ci.provenance(candidate_model)
        )

    return [promotion_decision]
