from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest

from ml_platform.errors import RolloutError
from ml_platform.rollout import Phase, RolloutStore, abort, decide, transition

from .conftest import T0, FakeClock, canary_spec


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> RolloutStore:
    return RolloutStore(tmp_path / "rollouts", clock=clock)


def test_start_records_a_pending_rollout_that_get_list_and_active_find(store):
    state = store.start("churn", "v2", "v1", canary_spec(), actor="cli:alice")
    assert state.phase is Phase.PENDING and state.rollout_id.startswith(
        "churn-20250301T120000000000Z-"
    )
    assert store.get(state.rollout_id) == state
    assert store.active("churn") == state and store.list("churn") == [state]
    assert store.active("fraud") is None and store.list("fraud") == []
    first = state.history[0]
    assert (first.from_phase, first.to_phase, first.actor) == (None, Phase.PENDING, "cli:alice")


def test_a_second_rollout_for_the_same_project_is_refused_naming_the_live_one(store, clock):
    live = store.start("churn", "v2", "v1", canary_spec())
    with pytest.raises(
        RolloutError, match=f"already has rollout {live.rollout_id} in phase pending"
    ):
        store.start("churn", "v3", "v1", canary_spec())
    store.start("fraud", "v9", "v8", canary_spec())  # other projects are independent
    done, _ = abort(live, now=T0, actor="cli:alice", reason="wrong build")
    store.save(done)
    assert store.active("churn") is None
    clock.advance()
    again = store.start("churn", "v3", "v1", canary_spec())
    assert [s.rollout_id for s in store.list("churn")] == [live.rollout_id, again.rollout_id]


def test_state_round_trips_exactly_including_evidence(store):
    state = store.start("churn", "v2", "v1", canary_spec(approval="before_full"))
    staged, _ = decide(state, None, state.spec, T0, False)
    store.save(staged)
    assert store.get(state.rollout_id) == staged
    raw = json.loads((store.root / "churn" / f"{state.rollout_id}.json").read_text())
    assert raw["phase"] == "staged" and raw["spec"]["approval"] == "before_full"


def test_history_is_append_only_and_terminal_states_are_final(store):
    state = store.start("churn", "v2", "v1", canary_spec())
    staged = transition(state, Phase.STAGED, at=T0, actor="sensor", reason="stage")
    store.save(staged)
    with pytest.raises(RolloutError, match="history is append-only"):
        store.save(transition(state, Phase.PAUSED, at=T0, actor="cli:bob", reason="rewrite"))
    back, _ = abort(staged, now=T0, actor="cli:bob", reason="stop")
    store.save(back)
    store.save(back)  # saving the same state again is harmless (a replayed plan does it)
    with pytest.raises(RolloutError, match="terminal"):
        store.save(replace(back, updated_at=T0.replace(year=2030)))


def test_a_failed_write_leaves_the_old_file_and_no_temp_files(store, monkeypatch):
    state = store.start("churn", "v2", "v1", canary_spec())
    staged = transition(state, Phase.STAGED, at=T0, actor="sensor", reason="stage")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ml_platform.rollout.store.json.dump", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save(staged)
    monkeypatch.undo()
    assert store.get(state.rollout_id) == state
    assert sorted(p.name for p in (store.root / "churn").iterdir()) == [
        ".lock",
        f"{state.rollout_id}.json",
    ]


def test_a_corrupt_file_is_reported_with_its_path(store):
    state = store.start("churn", "v2", "v1", canary_spec())
    path = store.root / "churn" / f"{state.rollout_id}.json"
    path.write_text("{not json")
    with pytest.raises(RolloutError, match=str(path)):
        store.get(state.rollout_id)


@pytest.mark.parametrize("bad", ["../etc", "Churn", ""])
def test_names_that_could_escape_the_root_are_refused(store, bad):
    with pytest.raises(RolloutError, match="invalid project name"):
        store.list(bad)
    with pytest.raises(RolloutError, match="invalid rollout id"):
        store.get(f"{bad}/x")


def test_the_lock_is_reentrant_within_a_thread(store):
    with store.locked("churn"), store.locked("churn"):
        state = store.start("churn", "v2", "v1", canary_spec())
    assert store.active("churn") == state


def _race_start(root: str, barrier, results) -> None:
    store = RolloutStore(root)
    barrier.wait()
    try:
        results.put(store.start("churn", "v2", "v1", canary_spec()).rollout_id)
    except RolloutError as e:
        results.put(f"refused: {e}")


def test_processes_racing_to_start_get_exactly_one_rollout(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_race_start, args=(str(tmp_path), barrier, results)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    started = [o for o in outcomes if not o.startswith("refused")]
    assert len(started) == 1
    assert all(started[0] in o for o in outcomes if o.startswith("refused"))
    assert [s.rollout_id for s in RolloutStore(tmp_path).list("churn")] == started
