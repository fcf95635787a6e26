"""What was live when, and why: the production rollout history of a project.

Read from the rollout store (every transition: who, when, why, the metrics it was decided on,
rollbacks, approvals) and merged with what MLflow says about each version (the promotion
decision and its failed gates, the rollout outcome tags written by :mod:`ml_platform.cd`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ml_platform.config import ProjectConfig
from ml_platform.rollout import Phase, RolloutState
from ml_platform.settings import PlatformPaths
from ml_platform.tracking import ModelRegistry

Event = Literal["started", "step", "promoted", "rolled_back", "approval", "paused",
                "inconclusive", "awaiting_approval", "staged"]
DECISION_TAG = "ml_platform.decision"  # written by ml_platform.promotion
FAILED_GATES_TAG = "ml_platform.failed_gates"


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    rollout_id: str
    event: Event
    candidate_version: str
    stable_version: str
    phase: str
    canary_weight: int
    actor: str
    reason: str
    live_version: str  # the version serving most users once this entry happened
    metrics: Mapping[str, Any] = field(default_factory=dict)
    decision: str | None = None  # the candidate's promotion decision (MLflow tag)
    failed_gates: tuple[str, ...] = ()


def _event(to: Phase, from_: Phase | None, weight_moved: bool) -> Event:
    if from_ is None:
        return "started"
    named: dict[Phase, Event] = {
        Phase.PROMOTED: "promoted", Phase.ROLLED_BACK: "rolled_back", Phase.PAUSED: "paused",
        Phase.INCONCLUSIVE: "inconclusive", Phase.AWAITING_APPROVAL: "awaiting_approval",
        Phase.STAGED: "staged",
    }
    if to in named:
        return named[to]
    return "step" if weight_moved else "staged"


def _entries(state: RolloutState, tags: Mapping[str, str]) -> list[HistoryEntry]:
    decision = tags.get(DECISION_TAG)
    failed = tuple(g for g in tags.get(FAILED_GATES_TAG, "").split(",") if g)
    out, weight = [], 0
    for t in state.history:
        event = _event(t.to_phase, t.from_phase, t.canary_weight != weight)
        weight = t.canary_weight
        live = state.candidate_version if t.canary_weight > 50 else state.stable_version
        out.append(HistoryEntry(t.at, state.rollout_id, event, state.candidate_version,
                                state.stable_version, t.to_phase.value, t.canary_weight,
                                t.actor, t.reason, live, dict(t.metrics), decision, failed))
    if state.approval is not None:
        a = state.approval
        at_the_time = [t.canary_weight for t in state.history if t.at <= a.at] or [0]
        out.append(HistoryEntry(a.at, state.rollout_id, "approval", state.candidate_version,
                                state.stable_version, Phase.AWAITING_APPROVAL.value,
                                at_the_time[-1], a.by, a.reason, state.stable_version,
                                {}, decision, failed))
    return out


def history(cfg: ProjectConfig, paths: PlatformPaths, registry: ModelRegistry
            ) -> list[HistoryEntry]:
    """Every recorded production event of ``cfg``'s rollouts, oldest first."""
    from ml_platform.cd import Environment

    store = Environment(cfg.name, "production", paths).store
    entries: list[HistoryEntry] = []
    tags_by_version: dict[str, Mapping[str, str]] = {}
    for state in store.list(cfg.name):
        version = state.candidate_version
        if version not in tags_by_version:
            tags_by_version[version] = registry.get_version_tags(cfg.name, int(version))
        entries.extend(_entries(state, tags_by_version[version]))
    return sorted(entries, key=lambda e: (e.at, e.rollout_id))


def _metrics_line(metrics: Mapping[str, Any]) -> str:
    checks = metrics.get("checks")
    if not isinstance(checks, dict):
        smoke = metrics.get("smoke")
        return f"smoke: {smoke.get('message')}" if isinstance(smoke, dict) else ""
    parts = []
    for name, c in checks.items():
        if c.get("verdict") in ("pass", "fail") and c.get("observed") is not None:
            parts.append(f"{name}={c['observed']:.4g} ({c['verdict']}, limit {c['threshold']})")
    canary = metrics.get("canary", {})
    head = f"canary {canary.get('requests', 0)} req" if canary else ""
    return ", ".join(p for p in [head, *parts] if p)


def render_history(entries: list[HistoryEntry]) -> str:
    """A plain-text timeline (one block per entry), for the CLI and run logs."""
    if not entries:
        return "no production rollouts recorded"
    lines = []
    for e in entries:
        gates = f"; failed gates: {', '.join(e.failed_gates)}" if e.failed_gates else ""
        decision = f" (decision {e.decision}{gates})" if e.decision else ""
        lines.append(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.event:<17} v{e.candidate_version} "
                     f"at {e.canary_weight:>3} % over v{e.stable_version}  live: "
                     f"v{e.live_version}  by {e.actor}{decision}")
        lines.append(f"    {e.reason}")
        numbers = _metrics_line(e.metrics)
        if numbers:
            lines.append(f"    {numbers}")
    return "\n".join(lines)
