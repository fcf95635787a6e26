"""The rollout sensor's reporting cursor: every transition once, none skipped."""

from __future__ import annotations

from ml_platform.rollout import Phase, RolloutStore, abort, transition
from ml_platform.rollout_report import ReportCursor, transition_metadata, unreported

from .conftest import T0, canary_spec


def test_each_transition_is_reported_once_across_ticks_and_rollouts(tmp_path) -> None:
    store = RolloutStore(tmp_path)
    first = store.start("churn", "2", "1", canary_spec(), actor="run abc")
    todo, cursor = unreported(store.list("churn"), ReportCursor.parse(None))
    assert [t.to_phase for u in todo for t in u.transitions] == [Phase.PENDING]
    assert unreported(store.list("churn"), ReportCursor.parse(cursor.dump()))[0] == []  # re-tick

    # the first rollout moves on and ends, and a second starts, all between two ticks
    staged = transition(first, Phase.STAGED, at=T0, actor="rollout_sensor", reason="stage")
    store.save(staged)
    done, _ = abort(staged, now=T0, actor="cli:alice", reason="wrong build")
    store.save(done)
    second = store.start("churn", "3", "1", canary_spec())
    todo, cursor = unreported(store.list("churn"), cursor)
    assert [(u.state.rollout_id, [t.to_phase for t in u.transitions]) for u in todo] == [
        (first.rollout_id, [Phase.STAGED, Phase.ROLLED_BACK]),
        (second.rollout_id, [Phase.PENDING]),
    ]
    assert cursor == ReportCursor(second.rollout_id, 1)


def test_an_unreadable_cursor_reports_everything_again_rather_than_nothing(tmp_path) -> None:
    store = RolloutStore(tmp_path)
    store.start("churn", "2", "1", canary_spec())
    assert ReportCursor.parse("not json") == ReportCursor()
    todo, _ = unreported(store.list("churn"), ReportCursor.parse("{}"))
    assert len(todo) == 1


def test_transition_metadata_names_who_why_and_each_check(tmp_path) -> None:
    rollout = RolloutStore(tmp_path).start("churn", "2", "1", canary_spec())
    moved = transition(rollout, Phase.ROLLED_BACK, at=T0, actor="rollout_sensor",
                       reason="prediction_shift: 0.26 > 0.15",
                       metrics={"checks": {"prediction_shift": {"verdict": "fail", "observed": 0.26,
                                                                "threshold": 0.15, "baseline": 0.25}}})
    meta = transition_metadata(moved, moved.history[-1])
    assert meta["phase"] == "rolled_back" and meta["from_phase"] == "pending"
    assert meta["actor"] == "rollout_sensor" and "0.26 > 0.15" in meta["reason"]
    assert meta["check/prediction_shift"].startswith("fail: observed 0.26 vs threshold 0.15")
