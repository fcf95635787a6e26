"""JSON codec for rollout states and intents (the store's on-disk format, version 1)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from ml_platform.config import RolloutSpec
from ml_platform.rollout.model import (
    Approval,
    Intent,
    Notify,
    Phase,
    PromoteCandidate,
    RequestApproval,
    RollbackToStable,
    RolloutState,
    SetWeights,
    Transition,
)

FORMAT_VERSION = 1

_INTENT_KINDS: dict[str, type[Intent]] = {
    "set_weights": SetWeights,
    "promote_candidate": PromoteCandidate,
    "rollback_to_stable": RollbackToStable,
    "request_approval": RequestApproval,
    "notify": Notify,
}
_KIND_OF = {cls: kind for kind, cls in _INTENT_KINDS.items()}


def state_to_dict(state: RolloutState) -> dict[str, Any]:
    """JSON-ready form, also usable as asset metadata."""
    return {
        "format": FORMAT_VERSION,
        "project": state.project,
        "rollout_id": state.rollout_id,
        "candidate_version": state.candidate_version,
        "stable_version": state.stable_version,
        "spec": state.spec.model_dump(mode="json"),
        "phase": state.phase.value,
        "step_index": state.step_index,
        "canary_weight": state.canary_weight,
        "started_at": state.started_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
        "step_started_at": state.step_started_at.isoformat(),
        "approval": _approval_to_dict(state.approval),
        "history": [_transition_to_dict(t) for t in state.history],
    }


def state_from_dict(d: dict[str, Any]) -> RolloutState:
    """Inverse of :func:`state_to_dict`; raises KeyError/ValueError/TypeError on bad input."""
    if d.get("format") != FORMAT_VERSION:
        raise ValueError(f"unknown rollout state format {d.get('format')!r}")
    return RolloutState(
        project=str(d["project"]),
        rollout_id=str(d["rollout_id"]),
        candidate_version=str(d["candidate_version"]),
        stable_version=str(d["stable_version"]),
        spec=RolloutSpec.model_validate(d["spec"]),
        phase=Phase(d["phase"]),
        step_index=int(d["step_index"]),
        canary_weight=int(d["canary_weight"]),
        started_at=datetime.fromisoformat(d["started_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        step_started_at=datetime.fromisoformat(d["step_started_at"]),
        approval=_approval_from_dict(d["approval"]),
        history=tuple(_transition_from_dict(t) for t in d["history"]),
    )


def intent_to_dict(intent: Intent) -> dict[str, Any]:
    return {"kind": _KIND_OF[type(intent)], **asdict(intent)}


def intent_from_dict(d: dict[str, Any]) -> Intent:
    fields = dict(d)
    cls = _INTENT_KINDS[fields.pop("kind")]
    if cls is Notify:
        fields["phase"] = Phase(fields["phase"])
    return cls(**fields)


def _approval_to_dict(a: Approval | None) -> dict[str, Any] | None:
    return None if a is None else {"by": a.by, "at": a.at.isoformat(), "reason": a.reason}


def _approval_from_dict(d: dict[str, Any] | None) -> Approval | None:
    if d is None:
        return None
    return Approval(by=d["by"], at=datetime.fromisoformat(d["at"]), reason=d["reason"])


def _transition_to_dict(t: Transition) -> dict[str, Any]:
    return {
        "from_phase": t.from_phase.value if t.from_phase else None,
        "to_phase": t.to_phase.value,
        "at": t.at.isoformat(),
        "actor": t.actor,
        "reason": t.reason,
        "canary_weight": t.canary_weight,
        "metrics": dict(t.metrics),
    }


def _transition_from_dict(d: dict[str, Any]) -> Transition:
    return Transition(
        from_phase=Phase(d["from_phase"]) if d["from_phase"] else None,
        to_phase=Phase(d["to_phase"]),
        at=datetime.fromisoformat(d["at"]),
        actor=d["actor"],
        reason=d["reason"],
        canary_weight=int(d["canary_weight"]),
        metrics=d["metrics"],
    )
