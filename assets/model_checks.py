"""Model CI gates as asset checks on ``<p>/candidate_model`` and ``<p>/evaluation``.

One check per gate, each a short adapter over :func:`ml_platform.model_ci.run_model_gate`. Every
enabled model check is declared ``blocking=True``, in warning mode too: in Dagster that makes
``promotion_decision`` wait for the check's verdict, which it needs whatever the mode (a
non-blocking check may run after it). A failed model gate is nevertheless reported as WARN (see
``assets.metadata.report_severity``), so it never stops the run: the decision runs and records
the REJECT (blocking mode) or HOLD (warning mode) with its evidence. The gate's mode is in the
check's description and its ``mode`` metadata. A gate switched off has no check at all.
Every check's metadata names the model version, MLflow run, data commit and code sha it judged:
the decision matches recorded verdicts to a candidate by them, across runs.
"""

from typing import Any

import dagster as dg

from assets import metadata as md
from assets.project import asset_key
from ml_platform import model_ci, pipeline
from ml_platform.config import GateMode, ProjectConfig
from resources import ModelRegistryResource, PlatformResource


def _model_check(cfg: ProjectConfig, gate: str, asset: str, description: str) -> dg.AssetChecksDefinition:
    ins = {"training_data": dg.AssetIn(key=asset_key(cfg, "training_data"))}
    if asset != "candidate_model":
        ins["candidate_model"] = dg.AssetIn(key=asset_key(cfg, "candidate_model"))

    @dg.asset_check(
        asset=asset_key(cfg, asset),
        name=gate,
        description=f"[{cfg.gates.mode(gate).value}] {description}",
        blocking=True,  # ordering only: model gates report WARN (see the module docstring)
        additional_ins=ins,
    )
    def model_gate_check(
        training_data: pipeline.DataSnapshot,
        candidate_model: pipeline.Candidate,
        model_registry: ModelRegistryResource,
        platform: PlatformResource,
    ) -> dg.AssetCheckResult:
        reports = platform.paths.reports
        outcome = model_ci.run_model_gate(
            gate, training_data, candidate_model, cfg, model_registry.registry(), reports
        )
        links = md.report_links(outcome.paths, platform.reports_base_url, reports)
        return md.check_result(
            outcome.verdict, kind="model", extra=model_ci.provenance(candidate_model), links=links
        )

    return model_gate_check


def build_model_checks(cfg: ProjectConfig) -> list[Any]:
    """The enabled model gates of one project, as asset checks."""
    gates = {**model_ci.CANDIDATE_GATES, **model_ci.EVALUATION_GATES}
    return [
        _model_check(cfg, gate, model_ci.MODEL_GATE_ASSETS[gate], description)
        for gate, description in gates.items()
        if cfg.gates.mode(gate) is not GateMode.OFF
    ]
