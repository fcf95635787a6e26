"""Sensor ticks with build_sensor_context / evaluate_tick against the real embedded store."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets import tags
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_data_commit_sensor"


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def(SENSOR)
    return sensor.evaluate_tick(dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources or {})
    ))


def test_no_repository_yet_skips_with_a_reason(defs, instance) -> None:
    data = tick(defs, instance)
    assert not data.run_requests
    assert "does not exist yet" in data.skip_message


def test_first_tick_starts_from_head_then_one_run_per_new_commit_in_order(defs, instance, churn, store) -> None:
    commit_frame(store, churn, clean_frame(seed=1), "old history")
    head = commit_frame(store, churn, clean_frame(seed=2), "head")
    first = tick(defs, instance)
    assert [r.run_key for r in first.run_requests] == [head]  # no history replay
    assert json.loads(first.cursor) == {"main": head}
    r = first.run_requests[0]
    assert r.tags[tags.DATA_COMMIT] == head and r.tags[tags.PROJECT] == "churn"

    a = commit_frame(store, churn, clean_frame(seed=3), "a")
    b = commit_frame(store, churn, clean_frame(seed=4), "b")
    second = tick(defs, instance, first.cursor)
    assert [r.run_key for r in second.run_requests] == [a, b]
    third = tick(defs, instance, second.cursor)
    assert not third.run_requests


def test_commit_that_does_not_touch_the_dataset_starts_no_run(defs, instance, churn, store) -> None:
    commit_frame(store, churn, clean_frame())
    cursor = tick(defs, instance).cursor
    store.commit(churn.dataset.repository, "main", {"README.md": b"docs"}, message="docs", author="t")
    assert not tick(defs, instance, cursor).run_requests


def test_commit_already_run_is_not_requested_again(defs, instance, churn, store) -> None:
    head = commit_frame(store, churn, clean_frame())
    instance.create_run_for_job(
        dg.GraphDefinition(name="noop", node_defs=[]).to_job(),
        tags={tags.PROJECT: "churn", tags.DATA_COMMIT: head},
    )
    assert not tick(defs, instance).run_requests


def test_garbage_cursor_is_reported_not_crashed_on(defs, instance, churn, store) -> None:
    commit_frame(store, churn, clean_frame())
    with pytest.raises(Exception, match="reset the sensor's cursor"):
        tick(defs, instance, cursor="{not json")
