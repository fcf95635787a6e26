"""Two projects side by side (projects/churn.yaml and projects/credit.yaml): separate asset graphs,
jobs, sensors and cursors, each running on its own data, although both live in one repository."""

import json

import dagster as dg
import pytest

from assets import tags
from definitions import build_defs
from ml_platform import dataset, demo_data
from ml_platform.config import ProjectConfig, load_project
from ml_platform.data.local import LocalDataStore
from orchestration import sensor_run_requests
from tests.conftest import ROOT

STAGES = ("training_data", "validation_report")


@pytest.fixture
def credit() -> ProjectConfig:
    return load_project(ROOT / "projects" / "credit.yaml")


@pytest.fixture
def both(churn: ProjectConfig, credit: ProjectConfig) -> dg.Definitions:
    assert churn.dataset.repository == credit.dataset.repository  # one repo, two files
    return build_defs([churn, credit])


def commit(store: LocalDataStore, cfg: ProjectConfig, frame) -> str:
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=cfg.dataset.branch)
    payload = {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)}
    return store.commit(repo, cfg.dataset.branch, payload, message=cfg.name, author="t").id


def test_each_project_has_its_own_graph_jobs_and_sensors(both: dg.Definitions) -> None:
    graph = both.resolve_asset_graph()
    by_project: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        by_project.setdefault(key.path[0], set()).add(key.path[1])
        assert graph.get(key).group_name == key.path[0]
    assert {"churn", "credit"} <= set(by_project)
    assert by_project["churn"] == by_project["credit"]  # same shape, disjoint keys
    for name in ("churn", "credit"):
        for job in ("ci", "validate", "staging", "production"):
            keys = both.resolve_job_def(f"{name}_{job}").asset_layer.executable_asset_keys
            assert keys and {k.path[0] for k in keys} == {name}
        assert both.resolve_sensor_def(f"{name}_data_commit_sensor") is not None


def test_each_sensor_keeps_its_own_cursor_and_runs_only_its_own_data(
    both, instance, churn, credit, store
) -> None:
    churn_commit = commit(store, churn, demo_data.generate_churn(600, seed=1))
    churn_reqs, churn_cursor = sensor_run_requests(both, instance, "churn_data_commit_sensor", None)
    credit_reqs, credit_cursor = sensor_run_requests(both, instance, "credit_data_commit_sensor", None)
    assert [r.tags[tags.DATA_COMMIT] for r in churn_reqs] == [churn_commit]
    assert credit_reqs == []  # the head commit does not touch credit's file

    credit_commit = commit(store, credit, demo_data.generate_credit(700, seed=2))
    churn_next, _ = sensor_run_requests(both, instance, "churn_data_commit_sensor", churn_cursor)
    credit_next, _ = sensor_run_requests(both, instance, "credit_data_commit_sensor", credit_cursor)
    assert churn_next == []  # credit's commit is not churn's business
    assert [r.tags[tags.DATA_COMMIT] for r in credit_next] == [credit_commit]
    # Separate cursors: each sensor tracks the branch head it has handled, independently.
    assert json.loads(churn_cursor) == json.loads(credit_cursor) == {"main": churn_commit}

    for cfg, request, rows in ((churn, churn_reqs[0], 600), (credit, credit_next[0], 700)):
        job = both.resolve_job_def(f"{cfg.name}_ci")
        result = job.execute_in_process(
            instance=instance,
            tags=dict(request.tags),
            asset_selection=[dg.AssetKey([cfg.name, s]) for s in STAGES],
            raise_on_error=False,
        )
        assert result.success, cfg.name
        assert result.dagster_run.tags[tags.PROJECT] == cfg.name
        mat = instance.get_latest_materialization_event(
            dg.AssetKey([cfg.name, "training_data"])
        ).asset_materialization
        assert mat.metadata["commit_message"].value == cfg.name  # the commit of its own file
        assert mat.metadata["rows"].value == rows
        assert mat.metadata["data_commit"].value == request.tags[tags.DATA_COMMIT]
        (check,) = [
            e for e in result.get_asset_check_evaluations() if e.check_name == "schema_valid"
        ]
        assert check.passed and check.asset_key.path[0] == cfg.name
