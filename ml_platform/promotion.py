"""The promotion decision: PROMOTE / HOLD / REJECT for one model version, with its evidence.

The decision is made from *recorded* gate verdicts (the Dagster layer reads them from the
instance's check evaluations), never from values held in memory by the run that trained the
model. So the same function gives the same answer in the training run, in a later run that
re-materializes only the decision, or behind a sensor; and :func:`require_promotable` lets every
later step (image, deployment, rollout) refuse a version that was not promoted.

The decision, the failed gates and the evidence are also written to the MLflow model version's
tags, so ``ml-platform why`` answers from MLflow alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ml_platform.config import GATE_NAMES, GateMode, ProjectConfig
from ml_platform.errors import GateRefusal, TrackingError
from ml_platform.gates import Verdict
from ml_platform.model_ci import DATA_GATES
from ml_platform.model_gates import Decision, DecisionResult, decide
from ml_platform.pipeline import CHALLENGER, CHAMPION, Candidate
from ml_platform.tracking import ModelRegistry

DECISION_TAG = "ml_platform.decision"
FAILED_GATES_TAG = "ml_platform.failed_gates"
EVIDENCE_TAG = "ml_platform.evidence"
PROMOTABLE = "promotable"
_MAX_EVIDENCE_CHARS = 90_000  # MLflow caps a model-version tag value at 100 000 characters


@dataclass(frozen=True)
class GateRecord:
    """One recorded evaluation of a gate and what it was evaluated on."""

    verdict: Verdict
    run_id: str
    model_version: int | None = None
    data_commit: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    """One recorded promotion decision (e.g. a promotion_decision materialization)."""

    project: str
    model_version: int
    decision: Decision
    failed_gates: tuple[str, ...]
    reason: str
    run_id: str = ""


@dataclass(frozen=True)
class PromotionDecision:
    """The decision for one model version, the verdicts it rests on and the evidence."""

    project: str
    model_version: int
    result: DecisionResult
    verdicts: tuple[Verdict, ...]
    evidence: Mapping[str, Any] = field(repr=False)

    @property
    def decision(self) -> Decision:
        return self.result.decision

    def promotable_verdict(self) -> Verdict:
        """The ``promotable`` gate: passes only on PROMOTE; the message names the failed gates."""
        ok = self.decision is Decision.PROMOTE
        return Verdict(
            gate=PROMOTABLE,
            passed=ok,
            message=f"version {self.model_version}: {self.decision.value}: {self.result.reason}",
            observed=self.decision.value,
            threshold=Decision.PROMOTE.value,
            mode=GateMode.BLOCKING,
            details={"failed_gates": list(self.result.failed)},
        )

    def summary(self) -> dict[str, Any]:
        e = self.evidence
        return {
            "decision": self.decision.value,
            "reason": self.result.reason,
            "failed_gates": ", ".join(self.result.failed) or "none",
            "model_version": self.model_version,
            "registered_model": e["registered_model"],
            "model_uri": e["model_uri"],
            "mlflow_run_id": e["mlflow_run_id"],
            "data_commit": e["data_commit"],
            "code_sha": e["code_sha"],
            "champion_before": e["champion_before"],
            "gates": [
                {
                    "gate": g["gate"],
                    "mode": g["mode"],
                    "verdict": "PASS" if g["passed"] else "FAIL",
                    "observed": g["observed"],
                    "threshold": g["threshold"],
                    "baseline": g["baseline"],
                    "message": g["message"],
                }
                for g in e["gates"]
            ],
        }

    def record(self) -> DecisionRecord:
        return DecisionRecord(
            self.project,
            self.model_version,
            self.decision,
            self.result.failed,
            self.result.reason,
            str(self.evidence.get("decided_by_run", "")),
        )


def expected_gates(cfg: ProjectConfig) -> list[str]:
    """Every gate the project has switched on, in the platform's canonical order."""
    return [g for g in GATE_NAMES if cfg.gates.mode(g) is not GateMode.OFF]


def _matches(gate: str, rec: GateRecord, candidate: Candidate) -> bool:
    if gate in DATA_GATES:
        return rec.data_commit == candidate.data_commit
    return rec.model_version == candidate.ref.version


def _missing(gate: str, cfg: ProjectConfig, candidate: Candidate) -> Verdict:
    subject = (
        f"data commit {candidate.data_commit[:12]}"
        if gate in DATA_GATES
        else f"model version {candidate.ref.version}"
    )
    return Verdict(
        gate=gate,
        passed=False,
        mode=cfg.gates.mode(gate),
        message=f"no recorded verdict of '{gate}' for {subject}: the check did not run or raised; "
        "re-run it before deciding",
    )


def select_verdicts(
    cfg: ProjectConfig, candidate: Candidate, records: Mapping[str, Sequence[GateRecord]]
) -> tuple[list[Verdict], dict[str, str]]:
    """For each enabled gate, the newest record that belongs to this candidate (records are newest
    first). A gate without one counts as failed: an unchecked model is not a good model."""
    verdicts: list[Verdict] = []
    runs: dict[str, str] = {}
    for gate in expected_gates(cfg):
        found = next((r for r in records.get(gate, ()) if _matches(gate, r, candidate)), None)
        verdicts.append(
            found.verdict.with_mode(cfg.gates.mode(gate)) if found else _missing(gate, cfg, candidate)
        )
        if found:
            runs[gate] = found.run_id
    return verdicts, runs


def _scalar_details(v: Verdict) -> dict[str, Any]:
    return {k: x for k, x in v.details.items() if isinstance(x, (int, float, str, bool)) or x is None}


def _evidence(
    cfg: ProjectConfig,
    candidate: Candidate,
    verdicts: list[Verdict],
    runs: Mapping[str, str],
    result: DecisionResult,
    champion_before: int | None,
    run_id: str,
) -> dict[str, Any]:
    gates = [
        {**v.to_dict(), "details": _scalar_details(v), "dagster_run_id": runs.get(v.gate)} for v in verdicts
    ]
    return {
        "project": cfg.name,
        "registered_model": candidate.ref.name,
        "model_version": candidate.ref.version,
        "model_uri": candidate.ref.model_uri,
        "mlflow_run_id": candidate.ref.run_id,
        "digest": candidate.ref.digest,
        "data_commit": candidate.data_commit,
        "code_sha": candidate.code_sha,
        "decision": result.decision.value,
        "reason": result.reason,
        "failed_blocking": list(result.failed_blocking),
        "failed_warning": list(result.failed_warning),
        "champion_before": champion_before,
        "decided_by_run": run_id,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gates": gates,
    }


def decide_promotion(
    cfg: ProjectConfig,
    candidate: Candidate,
    records: Mapping[str, Sequence[GateRecord]],
    registry: ModelRegistry,
    *,
    run_id: str,
) -> PromotionDecision:
    """Decide from the recorded verdicts and write the decision to the model version's tags.

    PROMOTE makes the version eligible for delivery; it does not make it the champion. The
    alias ``champion`` names what production serves, so it moves only when a production
    rollout of the version ends PROMOTED (:mod:`ml_platform.cd`).
    """
    verdicts, runs = select_verdicts(cfg, candidate, records)
    result = decide(verdicts)
    champion = registry.get_alias(cfg.name, CHAMPION)
    evidence = _evidence(
        cfg, candidate, verdicts, runs, result, champion.version if champion else None, run_id
    )
    decision = PromotionDecision(cfg.name, candidate.ref.version, result, tuple(verdicts), evidence)
    registry.set_version_tags(cfg.name, candidate.ref.version, decision_tags(decision))
    return decision


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    evidence = json.dumps(decision.evidence, default=str, separators=(",", ":"))
    if len(evidence) > _MAX_EVIDENCE_CHARS:  # keep the verdicts; drop the per-gate details
        slim = {**decision.evidence, "gates": [{**g, "details": {}} for g in decision.evidence["gates"]]}
        evidence = json.dumps(slim, default=str, separators=(",", ":"))
    return {
        DECISION_TAG: decision.decision.value,
        FAILED_GATES_TAG: ",".join(decision.result.failed),
        EVIDENCE_TAG: evidence,
    }


def recorded_decision(registry: ModelRegistry, project: str, version: int) -> PromotionDecision:
    """The decision recorded on a model version's MLflow tags (for ``ml-platform why``)."""
    tags = registry.get_version_tags(project, version)
    if DECISION_TAG not in tags or EVIDENCE_TAG not in tags:
        raise TrackingError(
            f"version {version} of '{project}' has no promotion decision yet (tag '{DECISION_TAG}'); "
            f"materialize {project}/promotion_decision for it first"
        )
    try:
        evidence = json.loads(tags[EVIDENCE_TAG])
    except json.JSONDecodeError as e:
        raise TrackingError(f"version {version} of '{project}': tag '{EVIDENCE_TAG}' is not JSON: {e}") from e
    verdicts = tuple(Verdict.from_dict(g) for g in evidence["gates"])
    result = DecisionResult(
        Decision(tags[DECISION_TAG]),
        evidence["reason"],
        tuple(evidence.get("failed_blocking", ())),
        tuple(evidence.get("failed_warning", ())),
    )
    return PromotionDecision(project, version, result, verdicts, evidence)


def require_promotable(records: Sequence[DecisionRecord], project: str, version: int) -> DecisionRecord:
    """The newest decision for ``project`` version ``version`` if it is PROMOTE; else GateRefusal.

    Every step after the decision (image, staging, production rollout) calls this, so a version
    that was rejected, held or never decided cannot be shipped by a later run, a sensor or a click.
    """
    mine = [r for r in records if r.project == project and r.model_version == version]
    if not mine:
        raise GateRefusal(
            f"{project} model version {version} has no promotion decision; materialize "
            f"{project}/promotion_decision for it before building or deploying it"
        )
    latest = mine[0]
    if latest.decision is not Decision.PROMOTE:
        gates = ", ".join(latest.failed_gates) or "none recorded"
        raise GateRefusal(
            f"refusing {project} model version {version}: its promotion decision is "
            f"{latest.decision.value} (failed gates: {gates}; {latest.reason}). Fix the model or data "
            "and train a new version; a rejected version cannot be promoted by a later run"
        )
    return latest


def explain(registry: ModelRegistry, project: str, version: int | None = None) -> PromotionDecision:
    """The recorded decision of ``version``, by default the current challenger (the newest candidate)."""
    if version is None:
        challenger = registry.get_alias(project, CHALLENGER)
        if challenger is None:
            raise TrackingError(
                f"model '{project}' has no '{CHALLENGER}' version in {registry.tracking_uri}; "
                "train one first or pass --version"
            )
        version = challenger.version
    return recorded_decision(registry, project, version)


def exit_code(decision: Decision, *, fail_on_hold: bool = False) -> int:
    """For CI servers: 1 on REJECT (and on HOLD with ``fail_on_hold``), else 0."""
    if decision is Decision.REJECT or (fail_on_hold and decision is Decision.HOLD):
        return 1
    return 0
