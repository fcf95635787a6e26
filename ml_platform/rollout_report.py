"""What a rollout sensor reports: the history transitions it has not reported yet.

Pure and dagster-free. The cursor says how far reporting got (a rollout id and how many of its
transitions), so a re-evaluated tick or a restarted daemon neither repeats nor skips one, and a
rollout that started *and* ended between two ticks is still reported in full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.rollout import RolloutState
from ml_platform.rollout.model import Transition


@dataclass(frozen=True)
class ReportCursor:
    rollout_id: str | None = None
    reported: int = 0

    @classmethod
    def parse(cls, raw: str | None) -> ReportCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(str(data["rollout_id"]), int(data["reported"]))
        except (ValueError, KeyError, TypeError):
            return cls()  # an unreadable cursor: report everything again rather than nothing

    def dump(self) -> str:
        return json.dumps({"rollout_id": self.rollout_id, "reported": self.reported})


@dataclass(frozen=True)
class Unreported:
    state: RolloutState
    transitions: tuple[Transition, ...]


def unreported(rollouts: Sequence[RolloutState], cursor: ReportCursor
               ) -> tuple[list[Unreported], ReportCursor]:
    """Transitions of ``rollouts`` (oldest first) after ``cursor``, and the cursor after them."""
    ids = [r.rollout_id for r in rollouts]
    start = ids.index(cursor.rollout_id) if cursor.rollout_id in ids else 0
    out: list[Unreported] = []
    for state in rollouts[start:]:
        done = cursor.reported if state.rollout_id == cursor.rollout_id else 0
        if len(state.history) > done:
            out.append(Unreported(state, tuple(state.history[done:])))
    if not rollouts:
        return out, cursor
    last = rollouts[-1]
    return out, ReportCursor(last.rollout_id, len(last.history))


def transition_metadata(state: RolloutState, t: Transition) -> dict[str, Any]:
    """One transition as plain metadata: who, when, why, weight, and each analysis check."""
    meta: dict[str, Any] = {
        "rollout_id": state.rollout_id, "phase": t.to_phase.value,
        "from_phase": t.from_phase.value if t.from_phase else "none",
        "canary_weight": t.canary_weight, "candidate_version": state.candidate_version,
        "stable_version": state.stable_version, "actor": t.actor, "reason": t.reason,
        "at": t.at.isoformat(timespec="seconds"),
    }
    checks = t.metrics.get("checks") if isinstance(t.metrics, Mapping) else None
    if isinstance(checks, Mapping):
        for name, check in checks.items():
            if isinstance(check, Mapping):
                meta[f"check/{name}"] = (f"{check.get('verdict')}: observed {check.get('observed')} "
                                         f"vs threshold {check.get('threshold')} "
                                         f"(stable {check.get('baseline')})")
    if t.metrics:
        meta["metrics"] = dict(t.metrics)
    return meta
