from __future__ import annotations

from dataclasses import replace

import pytest

from ml_platform.errors import RolloutError
from ml_platform.rollout import Notify, Phase, RequestApproval, RolloutState

from .conftest import (
    Crash,
    World,
    blue_green_spec,
    canary_spec,
    healthy_canary,
    healthy_stable,
    make_world,
)


def _to_canary_10(world: World, **spec_changes) -> RolloutState:
    world.start(canary_spec(**spec_changes))
    assert world.reconcile().phase is Phase.STAGED
    state = world.reconcile()
    assert (state.phase, state.canary_weight, world.deployer.weights) == (
        Phase.CANARY,
        10,
        (90, 10),
    )
    return state


def test_a_healthy_canary_walks_10_30_100_and_is_promoted(world):
    _to_canary_10(world)
    assert world.reconcile().canary_weight == 10  # the step has not lasted step_min_seconds
    world.clock.advance()
    assert world.reconcile().canary_weight == 30 and world.deployer.weights == (70, 30)
    world.clock.advance()
    done = world.reconcile()
    assert (done.phase, done.canary_weight) == (Phase.PROMOTED, 100)
    assert world.deployer.weights == (0, 100) and world.deployer.promoted == "v2"
    assert world.store.get(done.rollout_id) == done and world.store.active("churn") is None
    events = len(world.log.events)
    world.clock.advance()
    assert world.reconcile() == done and len(world.log.events) == events  # repeat: no effect
    assert [m.phase for m in world.messages if isinstance(m, Notify)][-1] is Phase.PROMOTED


@pytest.mark.parametrize(
    ("canary", "metric"),
    [
        (healthy_canary(errors=40), "error_rate"),
        (healthy_canary(p95_latency_ms=900.0), "p95_latency_ms"),
        (healthy_canary(mean_score=0.9), "prediction_shift"),
    ],
)
def test_a_bad_canary_is_rolled_back_with_stable_at_full_before_the_state_is_saved(
    world, canary, metric
):
    _to_canary_10(world)
    world.clock.advance()
    world.reconcile()  # 30 %
    world.metrics.canary = canary
    back = world.reconcile()  # no waiting: failures act at once
    assert (back.phase, back.canary_weight) == (Phase.ROLLED_BACK, 0)
    assert world.deployer.weights == (100, 0) and world.deployer.rolled_back
    log = world.log
    saved = log.index(("save", Phase.ROLLED_BACK, 0))
    assert log.index(("set_weights", 100, 0)) < log.index(("rollback",)) < saved
    last = back.history[-1]
    assert last.actor == "sensor" and metric in last.reason
    assert last.metrics["checks"][metric]["verdict"] == "fail"
    assert world.store.active("churn") is None


def test_too_little_traffic_is_inconclusive_and_never_advances(world):
    _to_canary_10(world)
    world.metrics.canary = healthy_canary(requests=12, errors=0)
    for _ in range(3):
        world.clock.advance()
        state = world.reconcile()
        assert (state.phase, state.canary_weight) == (Phase.INCONCLUSIVE, 10)
    assert world.deployer.weights == (90, 10)
    assert [t.to_phase for t in state.history].count(Phase.INCONCLUSIVE) == 1
    world.metrics.canary = healthy_canary()
    resumed = world.reconcile()
    assert (resumed.phase, resumed.canary_weight) == (Phase.CANARY, 30)


def test_waiting_for_labels_holds_at_the_step(world):
    analysis = canary_spec().analysis.model_copy(update={"min_live_accuracy": 0.7})
    _to_canary_10(world, analysis=analysis)
    world.metrics.canary = healthy_canary(feedback_count=5)
    world.clock.advance(600)
    held = world.reconcile()
    assert (held.phase, held.canary_weight, len(held.history)) == (Phase.CANARY, 10, 3)
    world.metrics.canary = healthy_canary()
    assert world.reconcile().canary_weight == 30


def test_approval_stops_before_full_traffic_until_someone_approves(world):
    _to_canary_10(world, approval="before_full")
    world.clock.advance()
    world.reconcile()
    world.clock.advance()
    waiting = world.reconcile()
    assert (waiting.phase, waiting.canary_weight) == (Phase.AWAITING_APPROVAL, 30)
    assert any(isinstance(m, RequestApproval) for m in world.messages)
    world.clock.advance(3600)
    assert world.reconcile() == waiting and world.deployer.promoted is None
    done = world.reconciler.approve("churn", by="cli:alice", reason="dashboards look good")
    assert done.phase is Phase.PROMOTED and world.deployer.weights == (0, 100)
    assert done.approval is not None and done.approval.by == "cli:alice"
    last = done.history[-1]
    assert last.actor == "cli:alice" and "dashboards look good" in last.reason
    with pytest.raises(RolloutError, match="no live rollout"):
        world.reconciler.approve("churn", by="cli:alice", reason="again")


def test_approving_a_rollout_that_is_not_waiting_is_refused(world):
    _to_canary_10(world, approval="before_full")
    with pytest.raises(RolloutError, match="is canary; only a rollout in awaiting_approval"):
        world.reconciler.approve("churn", by="cli:alice", reason="too early")


def test_blue_green_previews_switches_and_verifies(world):
    world.start(blue_green_spec())
    staged = world.reconcile()
    assert staged.phase is Phase.STAGED and world.deployer.weights == (100, 0)
    assert world.reconcile().phase is Phase.STAGED  # preview must last step_min_seconds
    world.clock.advance()
    switched = world.reconcile()
    assert (switched.phase, switched.canary_weight) == (Phase.CANARY, 100)
    assert world.deployer.weights == (0, 100) and not world.deployer.rolled_back
    world.metrics.stable = healthy_stable(requests=0, errors=0)  # blue serves nobody now
    world.clock.advance()
    done = world.reconcile()
    assert done.phase is Phase.PROMOTED and world.deployer.promoted == "v2"
    assert done.history[-1].metrics["checks"]["prediction_shift"]["verdict"] == "skipped"


def test_blue_green_switches_back_when_the_post_switch_analysis_fails(world):
    world.start(blue_green_spec())
    world.reconcile()
    world.clock.advance()
    world.reconcile()
    assert world.deployer.weights == (0, 100)
    world.metrics.canary = healthy_canary(errors=50)
    back = world.reconcile()
    assert back.phase is Phase.ROLLED_BACK and world.deployer.weights == (100, 0)
    log = world.log
    assert log.index(("set_weights", 100, 0)) < log.index(("save", Phase.ROLLED_BACK, 0))


def test_blue_green_preview_failure_never_gives_green_any_users(world):
    world.start(blue_green_spec(approval="before_full"))
    world.reconcile()
    world.metrics.canary = healthy_canary(p95_latency_ms=2000.0)
    assert world.reconcile().phase is Phase.ROLLED_BACK
    assert all(e[2] == 0 for e in world.log.named("set_weights"))


def test_blue_green_with_approval_waits_at_zero_then_switches(world):
    world.start(blue_green_spec(approval="before_full"))
    world.reconcile()
    world.clock.advance()
    assert world.reconcile().phase is Phase.AWAITING_APPROVAL and world.deployer.weights == (100, 0)
    switched = world.reconciler.approve("churn", by="cli:carol", reason="preview ok")
    assert (switched.phase, world.deployer.weights) == (Phase.CANARY, (0, 100))


def test_a_restarted_router_is_put_back_at_the_rollouts_weights(world):
    _to_canary_10(world)
    world.deployer.weights = (100, 0)  # the router restarted with its defaults
    state = world.reconcile()
    assert state.canary_weight == 10 and world.deployer.weights == (90, 10)


def test_abort_rolls_back_now_and_records_who_and_why(world):
    _to_canary_10(world)
    back = world.reconciler.abort("churn", by="cli:bob", reason="customer complaints")
    assert back.phase is Phase.ROLLED_BACK and world.deployer.weights == (100, 0)
    assert (back.history[-1].actor, back.history[-1].reason) == (
        "cli:bob",
        "aborted: customer complaints",
    )
    assert world.log.index(("set_weights", 100, 0)) < world.log.index(
        ("save", Phase.ROLLED_BACK, 0)
    )
    with pytest.raises(RolloutError, match="no live rollout"):
        world.reconciler.abort("churn", by="cli:bob", reason="again")
    with pytest.raises(RolloutError, match="needs who does it"):
        world.reconciler.abort("churn", by="cli:bob", reason=" ")


def test_pause_stops_progress_and_resume_continues(world):
    _to_canary_10(world)
    world.reconciler.pause("churn", by="cli:bob", reason="freeze")
    world.clock.advance()
    assert world.reconcile().phase is Phase.PAUSED and world.deployer.weights == (90, 10)
    world.reconciler.resume("churn", by="cli:bob", reason="unfrozen")
    assert world.reconcile().canary_weight == 30


def test_history_records_every_transition_with_actor_and_reason(world):
    _to_canary_10(world, approval="before_full")
    world.clock.advance()
    world.reconcile("sensor")
    world.clock.advance()
    world.reconcile("sensor")
    done = world.reconciler.approve("churn", by="cli:alice", reason="ok")
    h = done.history
    assert [(t.from_phase, t.to_phase, t.canary_weight, t.actor) for t in h] == [
        (None, Phase.PENDING, 0, "cli:alice"),
        (Phase.PENDING, Phase.STAGED, 0, "sensor"),
        (Phase.STAGED, Phase.CANARY, 10, "sensor"),
        (Phase.CANARY, Phase.CANARY, 30, "sensor"),
        (Phase.CANARY, Phase.AWAITING_APPROVAL, 30, "sensor"),
        (Phase.AWAITING_APPROVAL, Phase.PROMOTED, 100, "cli:alice"),
    ]
    assert all(t.reason for t in h)
    analysed = [t for t in h if t.from_phase in (Phase.CANARY, Phase.AWAITING_APPROVAL)]
    assert all(t.metrics["canary"]["requests"] == 300 for t in analysed)
    assert world.store.get(done.rollout_id).history == h


def test_reconcile_without_a_rollout_says_so(world):
    with pytest.raises(RolloutError, match="churn has no rollout"):
        world.reconcile()


# Crashes: the process dies somewhere between deciding and recording; a new process resumes.


def _rolled_back_world(world: World) -> None:
    _to_canary_10(world)
    world.metrics.canary = healthy_canary(errors=40)


def _advancing_world(world: World) -> None:
    _to_canary_10(world)
    world.clock.advance()


def _promoting_world(world: World) -> None:
    _to_canary_10(world)
    world.clock.advance()
    world.reconcile()
    world.clock.advance()


SCENARIOS = {
    "rollback": (_rolled_back_world, ["set_weights", "rollback", "save", "notify", "clear_plan"]),
    "advance": (_advancing_world, ["set_weights", "save", "notify", "clear_plan"]),
    "promote": (_promoting_world, ["set_weights", "promote", "save", "notify", "clear_plan"]),
}
CASES = [(name, point) for name, (_, points) in SCENARIOS.items() for point in points]


def _outcome(world: World) -> tuple[object, ...]:
    state = world.store.latest("churn")
    assert state is not None
    d = world.deployer
    # Rollout ids carry a random suffix; everything else must match. Messages are delivered at
    # least once, so they are compared as a set.
    sent = frozenset((type(m).__name__, getattr(m, "phase", None)) for m in world.messages)
    return (replace(state, rollout_id="-"), d.weights, d.promoted, d.rolled_back, sent)


@pytest.mark.parametrize(("scenario", "point"), CASES)
def test_a_crash_mid_reconcile_resumes_to_the_same_outcome(tmp_path, world, scenario, point):
    setup, _ = SCENARIOS[scenario]
    twin = make_world(tmp_path / "twin")  # the same story without a crash
    setup(twin)
    twin.reconcile()
    expected = _outcome(twin)

    setup(world)
    world.log.crash_at = {point}
    with pytest.raises(Crash):
        world.reconcile()
    world.restart()  # a new process: fresh store object, same files and router
    # The evidence moved meanwhile; the interrupted decision must still be the one that lands.
    world.metrics.canary = healthy_canary(requests=3, errors=0)
    state = world.reconcile()
    assert _outcome(world) == expected and state == world.store.latest("churn")
    assert world.store.pending_plan("churn") is None
    assert world.reconcile() == state  # and it stays there
