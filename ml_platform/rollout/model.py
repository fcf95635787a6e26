"""The rollout vocabulary: phases, the persisted state, metrics, assessments and intents.

Everything here is plain data. Decisions live in :mod:`.analysis` (is the canary healthy?) and
:mod:`.machine` (what happens next?); side effects live in :mod:`.reconcile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from ml_platform.config import Direction, RolloutSpec
from ml_platform.errors import DeploymentError, RolloutError


class Phase(StrEnum):
    PENDING = "pending"  # recorded; nothing done to the deployer yet
    STAGED = "staged"  # candidate deployed at 0 % (blue/green: preview analysis runs here)
    CANARY = "canary"  # candidate serves users at canary_weight, analysed at each step
    AWAITING_APPROVAL = "awaiting_approval"  # analysis passed; a person must approve the last step
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"  # held by a person; a failing analysis still rolls back
    INCONCLUSIVE = "inconclusive"  # not enough traffic to judge; weights are held


TERMINAL_PHASES: frozenset[Phase] = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})


@dataclass(frozen=True)
class Approval:
    by: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class Transition:
    """One entry of a rollout's append-only history: who moved it, when, why, on what evidence."""

    from_phase: Phase | None  # None for the entry that creates the rollout
    to_phase: Phase
    at: datetime
    actor: str  # "sensor", "cli:alice", ...
    reason: str
    canary_weight: int
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutState:
    project: str
    rollout_id: str
    candidate_version: str
    stable_version: str
    # The policy is frozen at start so that editing the project file mid-rollout cannot change
    # the rules a running rollout is judged by.
    spec: RolloutSpec
    phase: Phase
    step_index: int  # index into machine.weight_plan(spec); 0 is the 0 % (staged) step
    canary_weight: int
    started_at: datetime
    updated_at: datetime
    step_started_at: datetime
    approval: Approval | None
    history: tuple[Transition, ...]

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class VariantMetrics:
    """What one variant served over the metrics source's window."""

    requests: int
    errors: int
    p95_latency_ms: float
    mean_score: float
    feedback_count: int = 0
    live_accuracy: float | None = None
    scored: int | None = None  # predictions behind mean_score; None: one per request

    @property
    def score_samples(self) -> int:
        return self.requests if self.scored is None else self.scored

    def __post_init__(self) -> None:
        problem = _metrics_problem(self)
        if problem:
            raise DeploymentError(f"invalid variant metrics {self}: {problem}")


def _metrics_problem(m: VariantMetrics) -> str | None:
    if m.requests < 0 or m.feedback_count < 0 or (m.scored is not None and m.scored < 0):
        return "requests, feedback_count and scored must be >= 0"
    if not 0 <= m.errors <= m.requests:
        return "errors must be between 0 and requests"
    if not (math.isfinite(m.p95_latency_ms) and m.p95_latency_ms >= 0):
        return "p95_latency_ms must be a finite number >= 0"
    if not math.isfinite(m.mean_score):
        return "mean_score must be finite"
    if m.live_accuracy is not None and not 0 <= m.live_accuracy <= 1:
        return "live_accuracy must be in [0, 1] or None"
    return None


Verdict = Literal["pass", "fail", "insufficient", "skipped"]
Action = Literal["advance", "hold", "rollback", "inconclusive"]


@dataclass(frozen=True)
class Check:
    """One metric of a canary analysis, with the numbers a person needs to judge it."""

    metric: str
    verdict: Verdict
    observed: float | None
    threshold: float | None
    baseline: float | None  # the stable variant's value, when it has one
    direction: Direction
    message: str


@dataclass(frozen=True)
class Assessment:
    action: Action
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    stable: VariantMetrics
    canary: VariantMetrics

    def check(self, metric: str) -> Check:
        for c in self.checks:
            if c.metric == metric:
                return c
        raise KeyError(metric)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready evidence recorded with a transition."""
        return {
            "action": self.action,
            "checks": {
                c.metric: {
                    "verdict": c.verdict,
                    "observed": c.observed,
                    "threshold": c.threshold,
                    "baseline": c.baseline,
                }
                for c in self.checks
            },
            "stable": asdict(self.stable),
            "canary": asdict(self.canary),
        }


# Intents: what the machine wants done to the deployer, in order.


@dataclass(frozen=True)
class SetWeights:
    stable: int
    canary: int

    def __post_init__(self) -> None:
        in_range = 0 <= self.stable <= 100 and 0 <= self.canary <= 100
        if not in_range or self.stable + self.canary != 100:
            raise RolloutError(
                f"weights must be percentages adding up to 100, got stable={self.stable} "
                f"canary={self.canary}"
            )


@dataclass(frozen=True)
class PromoteCandidate:
    candidate_version: str


@dataclass(frozen=True)
class RollbackToStable:
    stable_version: str


@dataclass(frozen=True)
class RequestApproval:
    project: str
    rollout_id: str
    message: str


@dataclass(frozen=True)
class Notify:
    project: str
    rollout_id: str
    phase: Phase
    message: str


Intent = SetWeights | PromoteCandidate | RollbackToStable | RequestApproval | Notify
Message = RequestApproval | Notify
