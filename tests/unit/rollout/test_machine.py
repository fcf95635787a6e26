from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_platform.errors import RolloutError
from ml_platform.rollout import (
    LEGAL_TRANSITIONS,
    Assessment,
    Phase,
    PromoteCandidate,
    RequestApproval,
    RollbackToStable,
    RolloutState,
    SetWeights,
    abort,
    decide,
    pause,
    record_approval,
    resume,
    transition,
    weight_plan,
)
from ml_platform.rollout.machine import new_rollout
from ml_platform.rollout.model import Action

from .conftest import T0, blue_green_spec, canary_spec, healthy_canary, healthy_stable

STEP = timedelta(seconds=60)


def _assessment(action: Action) -> Assessment:
    reasons = (f"{action} because of a test",)
    return Assessment(action, reasons, (), healthy_stable(), healthy_canary())


ADVANCE, HOLD = _assessment("advance"), _assessment("hold")
INCONCLUSIVE, ROLLBACK = _assessment("inconclusive"), _assessment("rollback")


def _pending(spec=None) -> RolloutState:
    spec = spec or canary_spec()
    return new_rollout(
        project="churn",
        rollout_id="churn-20250301T120000000000Z-0000abcd",
        candidate_version="v2",
        stable_version="v1",
        spec=spec,
        now=T0,
        actor="cli:alice",
    )


def _step(state: RolloutState, assessment: Assessment | None, later: timedelta = STEP, **kw):
    return decide(
        state, assessment, state.spec, state.updated_at + later, **{"approval_present": False, **kw}
    )


def test_weight_plans_start_at_zero_and_end_at_full():
    assert weight_plan(canary_spec()) == (0, 10, 30, 100)
    assert weight_plan(blue_green_spec()) == (0, 100)


def test_canary_path_and_the_intents_of_each_move():
    staged, intents = _step(_pending(), None)
    assert staged.phase is Phase.STAGED and intents[0] == SetWeights(100, 0)
    c10, intents = _step(staged, None)
    assert (c10.phase, c10.canary_weight, intents[0]) == (Phase.CANARY, 10, SetWeights(90, 10))
    c30, _ = _step(c10, ADVANCE)
    done, intents = _step(c30, ADVANCE)
    assert (done.phase, done.canary_weight) == (Phase.PROMOTED, 100)
    assert intents[:2] == (SetWeights(0, 100), PromoteCandidate("v2"))
    assert [t.to_phase for t in done.history] == [
        Phase.PENDING,
        Phase.STAGED,
        Phase.CANARY,
        Phase.CANARY,
        Phase.PROMOTED,
    ]


def test_no_advance_before_the_step_has_lasted_step_min_seconds():
    c10, _ = _step(_step(_pending(), None)[0], None)
    early, intents = _step(c10, ADVANCE, later=timedelta(seconds=59))
    assert early == c10 and intents == (SetWeights(90, 10),)
    later, _ = _step(c10, ADVANCE, later=timedelta(seconds=60))
    assert later.canary_weight == 30 and later.step_started_at == c10.updated_at + STEP


def test_rollback_does_not_wait_and_puts_stable_at_full_first():
    c10, _ = _step(_step(_pending(), None)[0], None)
    back, intents = _step(c10, ROLLBACK, later=timedelta(0))
    assert back.phase is Phase.ROLLED_BACK and back.canary_weight == 0
    assert intents[0] == SetWeights(100, 0) and intents[1] == RollbackToStable("v1")
    assert back.history[-1].reason.startswith("analysis failed: rollback because")
    assert back.history[-1].metrics["action"] == "rollback"


def test_terminal_states_are_left_alone():
    c10, _ = _step(_step(_pending(), None)[0], None)
    back, _ = _step(c10, ROLLBACK)
    assert _step(back, ADVANCE) == (back, ())
    with pytest.raises(RolloutError, match="illegal transition rolled_back -> canary"):
        transition(back, Phase.CANARY, at=T0, actor="x", reason="y")
    with pytest.raises(RolloutError, match="rolled_back -> rolled_back"):
        abort(back, now=T0, actor="cli:bob", reason="again")


def test_illegal_transition_names_both_phases():
    with pytest.raises(RolloutError, match=r"illegal transition pending -> promoted"):
        transition(_pending(), Phase.PROMOTED, at=T0, actor="x", reason="y")


def test_approval_before_full_stops_before_the_last_step():
    spec = canary_spec(approval="before_full")
    c30, _ = _step(_step(_step(_pending(spec), None)[0], None)[0], ADVANCE)
    waiting, intents = _step(c30, ADVANCE)
    assert waiting.phase is Phase.AWAITING_APPROVAL and waiting.canary_weight == 30
    assert isinstance(intents[-1], RequestApproval)
    assert _step(waiting, ADVANCE)[0] == waiting
    approved = record_approval(waiting, now=T0, by="cli:alice", reason="dashboards look good")
    done, _ = _step(approved, HOLD, approval_present=True, actor="cli:alice")
    assert done.phase is Phase.PROMOTED
    assert done.history[-1].reason.startswith("approved by cli:alice: dashboards look good")
    with pytest.raises(RolloutError, match="only a rollout in awaiting_approval"):
        record_approval(c30, now=T0, by="cli:alice", reason="early")


def test_blue_green_previews_at_zero_switches_then_verifies():
    staged, _ = _step(_pending(blue_green_spec()), None)
    switched, intents = _step(staged, ADVANCE)
    assert (switched.phase, switched.canary_weight) == (Phase.CANARY, 100)
    assert intents[0] == SetWeights(0, 100)
    done, intents = _step(switched, ADVANCE)
    assert done.phase is Phase.PROMOTED and PromoteCandidate("v2") in intents
    back, intents = _step(switched, ROLLBACK)
    assert back.phase is Phase.ROLLED_BACK and intents[0] == SetWeights(100, 0)


def test_inconclusive_holds_the_weights_then_returns_to_the_step():
    c10, _ = _step(_step(_pending(), None)[0], None)
    unsure, intents = _step(c10, INCONCLUSIVE)
    assert unsure.phase is Phase.INCONCLUSIVE and intents[0] == SetWeights(90, 10)
    assert _step(unsure, INCONCLUSIVE)[0] == unsure  # no new history entry per tick
    back, _ = _step(unsure, HOLD)
    assert back.phase is Phase.CANARY and back.canary_weight == 10
    bg_unsure, _ = _step(_step(_pending(blue_green_spec()), None)[0], INCONCLUSIVE)
    assert _step(bg_unsure, HOLD)[0].phase is Phase.STAGED


def test_pause_holds_progress_but_not_a_rollback_and_resume_returns():
    c10, _ = _step(_step(_pending(), None)[0], None)
    paused, _ = pause(c10, now=T0 + STEP, actor="cli:bob", reason="incident elsewhere")
    assert _step(paused, ADVANCE)[0] == paused
    assert _step(paused, ROLLBACK)[0].phase is Phase.ROLLED_BACK
    resumed, _ = resume(paused, now=T0 + STEP, actor="cli:bob", reason="clear")
    assert (resumed.phase, resumed.canary_weight) == (Phase.CANARY, 10)
    with pytest.raises(RolloutError, match="not paused"):
        resume(resumed, now=T0, actor="cli:bob", reason="twice")


# Property: whatever the evidence, the machine walks the plan one legal step at a time.

evidence = st.sampled_from([None, ADVANCE, HOLD, INCONCLUSIVE, ROLLBACK])
moves = st.tuples(evidence, st.integers(0, 120), st.booleans())


@settings(max_examples=300)
@given(st.sampled_from(["canary", "blue_green"]), st.booleans(), st.lists(moves, max_size=25))
def test_every_run_is_a_chain_of_legal_single_steps(strategy, needs_approval, run):
    spec = canary_spec(strategy=strategy, approval="before_full" if needs_approval else "none")
    state = _pending(spec)
    plan = weight_plan(spec)
    for assessment, seconds, approved in run:
        before = state
        state, intents = decide(
            state, assessment, spec, state.updated_at + timedelta(seconds=seconds), approved
        )
        assert state.history[: len(before.history)] == before.history
        if state.phase is Phase.ROLLED_BACK and before.phase is not Phase.ROLLED_BACK:
            assert intents[0] == SetWeights(100, 0)
        if before.terminal:
            assert state == before
        if state.canary_weight > before.canary_weight:
            assert plan.index(state.canary_weight) == plan.index(before.canary_weight) + 1
            staged_canary = before.phase is Phase.STAGED and strategy == "canary"
            assert assessment is ADVANCE or approved or staged_canary
        if needs_approval and state.canary_weight == 100 > before.canary_weight:
            assert approved  # given in AWAITING_APPROVAL, or ahead of it
    for prev, entry in zip(state.history, state.history[1:], strict=False):
        assert entry.from_phase == prev.to_phase
        assert entry.to_phase in LEGAL_TRANSITIONS[prev.to_phase]
        assert entry.at >= prev.at and entry.actor and entry.reason


def test_decide_ignores_nothing_it_is_given():
    # Same inputs, same outputs: decide has no hidden inputs (clock, randomness, files).
    c10, _ = _step(_step(_pending(), None)[0], None)
    assert _step(c10, ADVANCE) == _step(c10, ADVANCE)
    assert replace(c10) == c10
