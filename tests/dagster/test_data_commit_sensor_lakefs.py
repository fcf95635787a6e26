"""data_commit_sensor on the lakeFS backend: real HTTP, the real lakefs_sdk, the test server.

The definitions are built the way `dagster dev` builds them with ML_PLATFORM_DATA_BACKEND=lakefs:
the resource's endpoint and credentials come from dg.EnvVar (LAKECTL_*), resolved at tick time.
"""

import json

import dagster as dg
import pytest

from assets import tags
from definitions import build_defs
from ml_platform import dataset
from ml_platform.config import ProjectConfig
from ml_platform.data.lakefs_store import (
    ENV_ACCESS_KEY_ID,
    ENV_ENDPOINT,
    ENV_SECRET_ACCESS_KEY,
    LakeFSDataStore,
)
from tests.dagster.conftest import clean_frame
from tests.lakefs_server.fixtures import (  # noqa: F401  (fixtures)
    LakeFSEndpoint,
    _lakefs_server_session,
    lakefs_server,
)

SENSOR = "churn_data_commit_sensor"


@pytest.fixture
def lakefs(lakefs_server: LakeFSEndpoint, monkeypatch: pytest.MonkeyPatch) -> LakeFSDataStore:  # noqa: F811
    monkeypatch.setenv("ML_PLATFORM_DATA_BACKEND", "lakefs")
    monkeypatch.setenv(ENV_ENDPOINT, lakefs_server.url)
    monkeypatch.setenv(ENV_ACCESS_KEY_ID, lakefs_server.access_key_id)
    monkeypatch.setenv(ENV_SECRET_ACCESS_KEY, lakefs_server.secret_access_key)
    return LakeFSDataStore(lakefs_server.url, lakefs_server.access_key_id, lakefs_server.secret_access_key)


@pytest.fixture
def lakefs_defs(churn: ProjectConfig, lakefs: LakeFSDataStore) -> dg.Definitions:
    return build_defs([churn])


def commit(store: LakeFSDataStore, cfg: ProjectConfig, seed: int) -> str:
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=cfg.dataset.branch)
    payload = {cfg.dataset.path: dataset.to_bytes(clean_frame(rows=300, seed=seed), cfg.dataset.path)}
    return store.commit(repo, cfg.dataset.branch, payload, message=f"seed {seed}", author="t").id


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def(SENSOR)
    return sensor.evaluate_tick(
        dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources or {})
        )
    )


def keys(result) -> list[str]:
    return [r.run_key for r in result.run_requests]


def test_resource_credentials_come_from_env_vars_not_literals(lakefs_defs) -> None:
    resource = lakefs_defs.resources["data_store"]
    assert resource.backend == "lakefs"
    assert isinstance(resource.lakefs_secret_access_key, dg.EnvVar)
    assert resource.lakefs_secret_access_key.env_var_name == ENV_SECRET_ACCESS_KEY


def test_first_tick_from_head_then_every_commit_once_in_order(
    lakefs_defs, instance, churn, lakefs, lakefs_server  # noqa: F811
) -> None:
    commit(lakefs, churn, 1)
    head = commit(lakefs, churn, 2)
    first = tick(lakefs_defs, instance)
    assert keys(first) == [head]  # no history replay
    assert first.run_requests[0].tags[tags.DATA_COMMIT] == head

    new = [commit(lakefs, churn, s) for s in (3, 4, 5)]
    second = tick(lakefs_defs, instance, first.cursor)
    assert keys(second) == new  # commit order, none skipped
    assert not tick(lakefs_defs, instance, second.cursor).run_requests  # none duplicated
    later = commit(lakefs, churn, 6)
    assert keys(tick(lakefs_defs, instance, second.cursor)) == [later]
    # It really went over HTTP to the lakeFS API.
    assert ("GET", "/api/v1/repositories/{repository}/refs/{ref}/commits") in lakefs_server.requests


def test_branch_reset_is_detected_reported_and_followed(lakefs_defs, instance, churn, lakefs) -> None:
    a = commit(lakefs, churn, 1)
    cursor = tick(lakefs_defs, instance).cursor
    b = commit(lakefs, churn, 2)
    c = commit(lakefs, churn, 3)
    cursor = tick(lakefs_defs, instance, cursor).cursor
    assert json.loads(cursor) == {"main": c}

    lakefs.reset_branch(churn.dataset.repository, churn.dataset.branch, a)  # b, c leave the branch
    d = commit(lakefs, churn, 4)
    after = tick(lakefs_defs, instance, cursor)
    assert keys(after) == [d]  # b and c are not replayed; the new head runs
    assert after.run_requests[0].tags[tags.DATA_RESET_FROM] == c
    assert json.loads(after.cursor) == {"main": d}
    assert b not in keys(after)
    e = commit(lakefs, churn, 5)
    assert keys(tick(lakefs_defs, instance, after.cursor)) == [e]


def test_missing_env_var_fails_the_tick_naming_the_variable(
    lakefs_defs, instance, churn, lakefs, monkeypatch  # noqa: F811
) -> None:
    commit(lakefs, churn, 1)
    monkeypatch.delenv(ENV_SECRET_ACCESS_KEY)
    with pytest.raises(Exception, match=ENV_SECRET_ACCESS_KEY):
        tick(lakefs_defs, instance)
