"""The rollout state machine: pure functions from (state, evidence, time) to (state, intents).

Nothing here touches a deployer, a clock or a file; :mod:`.reconcile` applies the intents.

**Weight plan.** ``weight_plan(spec)`` lists the candidate's traffic share per step, starting
with the staged 0 % step: canary ``[0, *spec.steps]`` (e.g. 0, 10, 30, 100), blue/green
``[0, 100]``. ``state.step_index`` points into it.

**Canary.** PENDING -> STAGED (0 %) -> CANARY at each step. At every step the canary is analysed;
it advances once the analysis passes *and* the step has lasted ``step_min_seconds``. Reaching
the last step (100 %) is the promotion.

**Blue/green.** The router cannot mirror or shadow user traffic, so the green (candidate)
variant is analysed twice: first a *preview* in STAGED while it serves 0 % of users (the smoke
traffic the deployment step sends to the green variant directly is what the metrics source
reports for it), then, after the switch to 100 %, a *post-switch* analysis in CANARY at 100 %
while the blue (stable) variant is kept warm. Failing either switches back to blue at once.

**Approval** ``before_full`` stops at AWAITING_APPROVAL before the step that gives the candidate
all traffic (canary: the promotion; blue/green: the switch) until someone approves.

**Analysis outcomes.** rollback -> ROLLED_BACK at any time, in any live phase (PAUSED and
AWAITING_APPROVAL included: safety beats a pause or a pending approval); inconclusive ->
INCONCLUSIVE (weights held; back to the step's phase when evidence suffices); hold -> stay.
Rollback intents put stable at 100 % first.

Every decision that changes nothing still returns ``SetWeights`` for the current weights, so
repeating reconcile re-asserts them (a restarted router is put back where the rollout was).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ml_platform.config import RolloutSpec
from ml_platform.errors import RolloutError
from ml_platform.rollout.model import (
    Approval,
    Assessment,
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

_P = Phase
LEGAL_TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    _P.PENDING: frozenset({_P.STAGED, _P.PAUSED, _P.ROLLED_BACK}),
    _P.STAGED: frozenset(
        {_P.CANARY, _P.INCONCLUSIVE, _P.AWAITING_APPROVAL, _P.PAUSED, _P.PROMOTED, _P.ROLLED_BACK}
    ),
    _P.CANARY: frozenset(
        {_P.CANARY, _P.INCONCLUSIVE, _P.AWAITING_APPROVAL, _P.PAUSED, _P.PROMOTED, _P.ROLLED_BACK}
    ),
    _P.INCONCLUSIVE: frozenset(
        {_P.STAGED, _P.CANARY, _P.AWAITING_APPROVAL, _P.PAUSED, _P.PROMOTED, _P.ROLLED_BACK}
    ),
    _P.AWAITING_APPROVAL: frozenset({_P.CANARY, _P.PAUSED, _P.PROMOTED, _P.ROLLED_BACK}),
    _P.PAUSED: frozenset(
        {_P.PENDING, _P.STAGED, _P.CANARY, _P.INCONCLUSIVE, _P.AWAITING_APPROVAL, _P.ROLLED_BACK}
    ),
    _P.PROMOTED: frozenset(),
    _P.ROLLED_BACK: frozenset(),
}

Decision = tuple[RolloutState, tuple[Intent, ...]]


def weight_plan(spec: RolloutSpec) -> tuple[int, ...]:
    """The candidate's traffic share at each step, starting with the staged 0 % step."""
    if spec.strategy == "blue_green":
        return (0, 100)
    return (0, *spec.steps)


def new_rollout(
    *,
    project: str,
    rollout_id: str,
    candidate_version: str,
    stable_version: str,
    spec: RolloutSpec,
    now: datetime,
    actor: str,
) -> RolloutState:
    """A PENDING rollout whose history starts with its creation."""
    created = Transition(
        from_phase=None,
        to_phase=Phase.PENDING,
        at=now,
        actor=actor,
        reason=f"rollout of {candidate_version} replacing {stable_version} ({spec.strategy})",
        canary_weight=0,
    )
    return RolloutState(
        project=project,
        rollout_id=rollout_id,
        candidate_version=candidate_version,
        stable_version=stable_version,
        spec=spec,
        phase=Phase.PENDING,
        step_index=0,
        canary_weight=0,
        started_at=now,
        updated_at=now,
        step_started_at=now,
        approval=None,
        history=(created,),
    )


def transition(
    state: RolloutState,
    to: Phase,
    *,
    at: datetime,
    actor: str,
    reason: str,
    metrics: Mapping[str, Any] | None = None,
    step_index: int | None = None,
) -> RolloutState:
    """Move to ``to`` (optionally to another step) and append the move to the history."""
    if to not in LEGAL_TRANSITIONS[state.phase]:
        allowed = ", ".join(sorted(LEGAL_TRANSITIONS[state.phase])) or "nothing (terminal)"
        raise RolloutError(
            f"rollout {state.rollout_id}: illegal transition {state.phase} -> {to} "
            f"(from {state.phase} it may go to: {allowed})"
        )
    index = state.step_index if step_index is None else step_index
    weight = weight_plan(state.spec)[index]
    moved = index != state.step_index
    entry = Transition(state.phase, to, at, actor, reason, weight, dict(metrics or {}))
    return replace(
        state,
        phase=to,
        step_index=index,
        canary_weight=weight,
        updated_at=at,
        step_started_at=at if moved else state.step_started_at,
        history=(*state.history, entry),
    )


def needs_analysis(state: RolloutState) -> bool:
    """Whether deciding this state's next move needs fresh variant metrics."""
    phase = resume_phase(state) if state.phase is Phase.PAUSED else state.phase
    if phase is Phase.STAGED:
        return state.spec.strategy == "blue_green"
    return phase in (Phase.CANARY, Phase.INCONCLUSIVE, Phase.AWAITING_APPROVAL)


def resume_phase(state: RolloutState) -> Phase:
    """The phase a PAUSED rollout returns to: the one it was paused from."""
    for entry in reversed(state.history):
        if entry.to_phase is Phase.PAUSED and entry.from_phase is not None:
            return entry.from_phase
    raise RolloutError(f"rollout {state.rollout_id} is not paused (phase {state.phase})")


@dataclass(frozen=True)
class _Ctx:
    state: RolloutState
    assessment: Assessment | None
    spec: RolloutSpec
    now: datetime
    approval_present: bool
    actor: str

    @property
    def evidence(self) -> dict[str, Any]:
        return self.assessment.snapshot() if self.assessment else {}


def decide(
    state: RolloutState,
    assessment: Assessment | None,
    spec: RolloutSpec,
    now: datetime,
    approval_present: bool,
    *,
    actor: str = "sensor",
) -> Decision:
    """The next state and the ordered intents that get the deployer there.

    ``assessment`` is None when no metrics were read (phases that need none, see
    :func:`needs_analysis`); an analysis phase without one holds. Terminal states are returned
    unchanged with no intents, so reconciling a finished rollout is a no-op.
    """
    if state.terminal:
        return state, ()
    ctx = _Ctx(state, assessment, spec, now, approval_present, actor)
    if assessment is not None and assessment.action == "rollback":
        return _roll_back(ctx, "analysis failed: " + "; ".join(assessment.reasons))
    if state.phase is Phase.PENDING:
        return _stage(ctx)
    if state.phase is Phase.AWAITING_APPROVAL:
        return _await_approval(ctx)
    if state.phase is Phase.PAUSED:
        return _hold(state)
    if state.phase is Phase.STAGED and spec.strategy == "canary":
        return _advance(ctx, "candidate staged at 0 %; starting the canary")
    return _analyse(ctx)


def abort(state: RolloutState, *, now: datetime, actor: str, reason: str) -> Decision:
    """A person's rollback: stable to 100 % first, whatever the analysis says."""
    ctx = _Ctx(state, None, state.spec, now, False, actor)
    return _roll_back(ctx, f"aborted: {reason}")


def pause(state: RolloutState, *, now: datetime, actor: str, reason: str) -> Decision:
    paused = transition(state, Phase.PAUSED, at=now, actor=actor, reason=f"paused: {reason}")
    return paused, (_weights(paused), _notify(paused, f"paused by {actor}: {reason}"))


def resume(state: RolloutState, *, now: datetime, actor: str, reason: str) -> Decision:
    if state.phase is not Phase.PAUSED:
        raise RolloutError(
            f"rollout {state.rollout_id} is {state.phase}, not paused; nothing to resume"
        )
    back = transition(state, resume_phase(state), at=now, actor=actor, reason=f"resumed: {reason}")
    return back, (_weights(back), _notify(back, f"resumed by {actor}: {reason}"))


def record_approval(state: RolloutState, *, now: datetime, by: str, reason: str) -> RolloutState:
    """Attach an approval to a rollout that waits for one (the next decide acts on it)."""
    if state.phase is not Phase.AWAITING_APPROVAL:
        raise RolloutError(
            f"rollout {state.rollout_id} is {state.phase}; only a rollout in "
            f"{Phase.AWAITING_APPROVAL} can be approved"
        )
    if not by.strip() or not reason.strip():
        raise RolloutError("an approval needs who approved (by) and why (reason)")
    return replace(state, approval=Approval(by=by, at=now, reason=reason), updated_at=now)


# Moves. Each returns the whole decision so intents are built next to the state they produce.


def _hold(state: RolloutState) -> Decision:
    return state, (_weights(state),)


def _stage(ctx: _Ctx) -> Decision:
    staged = _to(ctx, Phase.STAGED, f"staging {ctx.state.candidate_version} at 0 %")
    return staged, (_weights(staged), _notify(staged, staged.history[-1].reason))


def _analyse(ctx: _Ctx) -> Decision:
    """STAGED (blue/green preview), CANARY and INCONCLUSIVE: act on the assessment."""
    state, a = ctx.state, ctx.assessment
    if a is None or not _step_elapsed(ctx):
        return _hold(state)
    if a.action == "inconclusive":
        if state.phase is Phase.INCONCLUSIVE:
            return _hold(state)
        return _moved(ctx, Phase.INCONCLUSIVE, "inconclusive: " + "; ".join(a.reasons))
    if a.action == "hold":
        if state.phase is not Phase.INCONCLUSIVE:
            return _hold(state)
        home = Phase.STAGED if state.step_index == 0 else Phase.CANARY
        return _moved(ctx, home, "enough traffic again; holding: " + "; ".join(a.reasons))
    return _advance(ctx, "analysis passed: " + "; ".join(a.reasons))


def _advance(ctx: _Ctx, reason: str) -> Decision:
    state, plan = ctx.state, weight_plan(ctx.spec)
    last = len(plan) - 1
    if state.step_index == last:  # blue/green post-switch analysis passed
        return _promote(ctx, reason)
    nxt = state.step_index + 1
    if nxt == last and ctx.spec.approval == "before_full" and not ctx.approval_present:
        return _request_approval(ctx, reason)
    if nxt == last and ctx.spec.strategy == "canary":
        return _promote(ctx, reason)
    moved = _to(ctx, Phase.CANARY, f"{reason} -> candidate at {plan[nxt]} %", step_index=nxt)
    return moved, (_weights(moved), _notify(moved, moved.history[-1].reason))


def _await_approval(ctx: _Ctx) -> Decision:
    if not ctx.approval_present:
        return _hold(ctx.state)
    approval = ctx.state.approval
    who = f"approved by {approval.by}: {approval.reason}" if approval else "approved"
    return _advance(ctx, who)


def _request_approval(ctx: _Ctx, reason: str) -> Decision:
    waiting = _to(ctx, Phase.AWAITING_APPROVAL, f"{reason} -> waiting for approval")
    ask = RequestApproval(
        project=waiting.project,
        rollout_id=waiting.rollout_id,
        message=(
            f"{waiting.project}: approve {waiting.candidate_version} taking all traffic "
            f"from {waiting.stable_version} (rollout {waiting.rollout_id})"
        ),
    )
    return waiting, (_weights(waiting), ask)


def _promote(ctx: _Ctx, reason: str) -> Decision:
    last = len(weight_plan(ctx.spec)) - 1
    done = _to(ctx, Phase.PROMOTED, f"{reason} -> promoted", step_index=last)
    promote = PromoteCandidate(done.candidate_version)
    return done, (SetWeights(stable=0, canary=100), promote, _notify(done, done.history[-1].reason))


def _roll_back(ctx: _Ctx, reason: str) -> Decision:
    # The state says 0 % for the candidate; the first intent makes it true before anything else.
    back = _to(ctx, Phase.ROLLED_BACK, reason, step_index=0)
    intents: tuple[Intent, ...] = (
        SetWeights(stable=100, canary=0),
        RollbackToStable(back.stable_version),
        _notify(back, f"rolled back to {back.stable_version}: {reason}"),
    )
    return back, intents


def _moved(ctx: _Ctx, to: Phase, reason: str) -> Decision:
    moved = _to(ctx, to, reason)
    return moved, (_weights(moved), _notify(moved, reason))


def _to(ctx: _Ctx, to: Phase, reason: str, *, step_index: int | None = None) -> RolloutState:
    return transition(
        ctx.state,
        to,
        at=ctx.now,
        actor=ctx.actor,
        reason=reason,
        metrics=ctx.evidence,
        step_index=step_index,
    )


def _step_elapsed(ctx: _Ctx) -> bool:
    waited = (ctx.now - ctx.state.step_started_at).total_seconds()
    return waited >= ctx.spec.step_min_seconds


def _weights(state: RolloutState) -> SetWeights:
    return SetWeights(stable=state.stable_weight, canary=state.canary_weight)


def _notify(state: RolloutState, message: str) -> Notify:
    return Notify(state.project, state.rollout_id, state.phase, message)
