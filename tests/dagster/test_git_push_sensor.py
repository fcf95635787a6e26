"""git_push_sensor against a real bare repository: scopes, cursors, run keys, pinned inputs."""

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from assets import tags
from definitions import build_defs
from ml_platform.config import CodeSpec, ProjectConfig
from tests.conftest import require_service
from tests.dagster.conftest import clean_frame, commit_frame

SENSOR = "churn_git_push_sensor"
# The assets of assets/project.py (promotion_decision and later ones live in their own modules).
PROJECT_ASSETS = {"training_data", "validation_report", "drift_report", "candidate_model", "evaluation"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


class Work:
    """A working clone pushing to a bare 'origin' in tmp_path."""

    def __init__(self, root: Path) -> None:
        self.origin = root / "origin.git"
        self.dir = root / "work"
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.origin))
        git(root, "clone", "--quiet", str(self.origin), str(self.dir))
        git(self.dir, "checkout", "--quiet", "-b", "main")

    def commit(self, message: str) -> str:
        (self.dir / f"{message.replace(' ', '_').replace('/', '_')}.txt").write_text(message)
        git(self.dir, "add", "-A")
        git(self.dir, "commit", "--quiet", "-m", message)
        return git(self.dir, "rev-parse", "HEAD")

    def push(self, branch: str) -> None:
        git(self.dir, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")

    def branch(self, name: str) -> None:
        git(self.dir, "checkout", "--quiet", "-B", name)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    require_service(shutil.which("git") is not None, "git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "Ada Lovelace")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "ada@example.com")


@pytest.fixture
def work(tmp_path: Path) -> Work:
    return Work(tmp_path)


@pytest.fixture
def project(churn: ProjectConfig, work: Work) -> ProjectConfig:
    return churn.model_copy(update={"code": CodeSpec(remote=str(work.origin))})


@pytest.fixture
def push_defs(project: ProjectConfig) -> dg.Definitions:
    return build_defs([project])


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def(SENSOR)
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=dict(defs.resources or {})
    )
    return sensor.evaluate_tick(ctx)


def test_each_branch_runs_in_the_job_of_its_scope_with_both_inputs_pinned(
    push_defs, instance, project, store, work
) -> None:
    data = commit_frame(store, project, clean_frame())
    feature = work.commit("feature work")
    work.push("feature/x")
    main = work.commit("on main")
    work.push("main")
    release = work.commit("release cut")
    work.push("release/1.0")

    first = tick(push_defs, instance)
    by_branch = {r.tags[tags.CODE_BRANCH]: r for r in first.run_requests}
    assert set(by_branch) == {"feature/x", "main", "release/1.0"}
    expected = {
        "feature/x": (feature, "validate", "churn_validate"),
        "main": (main, "staging", "churn_staging"),
        "release/1.0": (release, "production", "churn_production"),
    }
    for branch, (sha, scope, job) in expected.items():
        r = by_branch[branch]
        assert r.job_name == job
        assert r.run_key == f"{sha}:{scope}"  # the domain's key (ml_platform.code_source)
        assert r.tags[tags.CODE_SHA] == sha and r.tags[tags.SCOPE] == scope
        assert r.tags[tags.DATA_COMMIT] == data  # the data branch head at request time
        assert r.tags[tags.PROJECT] == "churn"
    assert json.loads(first.cursor) == {"feature/x": feature, "main": main, "release/1.0": release}


def test_new_pushes_run_oldest_first_per_branch_and_nothing_twice(
    push_defs, instance, project, store, work
) -> None:
    commit_frame(store, project, clean_frame())
    work.commit("base")
    work.push("main")
    cursor = tick(push_defs, instance).cursor
    a = work.commit("a")
    b = work.commit("b")
    work.push("main")
    work.branch("feature/y")
    c = work.commit("c")
    work.push("feature/y")
    second = tick(push_defs, instance, cursor)
    assert [(r.tags[tags.CODE_BRANCH], r.tags[tags.CODE_SHA]) for r in second.run_requests] == [
        ("feature/y", c),  # first sighting: its head only, no replay
        ("main", a),
        ("main", b),
    ]
    assert not tick(push_defs, instance, second.cursor).run_requests


def test_no_data_yet_keeps_the_cursor_so_the_push_runs_later(push_defs, instance, work) -> None:
    work.commit("early")
    work.push("main")
    result = tick(push_defs, instance)
    assert not result.run_requests
    assert "no data to pin" in result.skip_message
    assert result.cursor is None


def test_scope_jobs_select_only_their_stages(push_defs) -> None:
    def keys(job: str) -> set[str]:
        return {k.path[-1] for k in push_defs.resolve_job_def(job).asset_layer.executable_asset_keys}

    ci = {"training_data", "validation_report", "drift_report", "candidate_model", "evaluation"}
    assert keys("churn_validate") >= ci
    assert keys("churn_ci") == keys("churn_validate")
    assert keys("churn_staging") >= ci and keys("churn_production") >= keys("churn_staging")
    assert push_defs.resolve_job_def("churn_production").tags[tags.SCOPE] == "production"
    stage_values = [spec.tags.get(tags.STAGE) for spec in push_defs.resolve_all_asset_specs()]
    assert all(type(v) is str for v in stage_values if v is not None)  # serializable for the UI


def test_definitions_serialize_like_the_code_server_does(push_defs) -> None:
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    repo = push_defs.get_repository_def()
    assert serialize_value(RepositorySnap.from_def(repo))  # what `dagster dev` loads


def test_validate_run_records_the_pushed_sha_on_every_materialization(
    push_defs, instance, project, store, work
) -> None:
    commit_frame(store, project, clean_frame())
    sha = work.commit("feature")
    work.push("feature/x")
    (request,) = tick(push_defs, instance).run_requests
    job = push_defs.resolve_job_def(request.job_name)
    result = job.execute_in_process(instance=instance, tags=dict(request.tags), raise_on_error=False)
    assert result.success
    assert result.dagster_run.tags[tags.SCOPE] == "validate"
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] in PROJECT_ASSETS]
    assert {e.asset_key.path[-1] for e in events} == PROJECT_ASSETS
    for e in events:
        mat = e.event_specific_data.materialization
        assert mat.metadata["code_sha"].value == sha, e.asset_key
        assert mat.tags[tags.CODE_SHA] == sha
        assert mat.metadata.get("data_commit") is None or (
            mat.metadata["data_commit"].value == request.tags[tags.DATA_COMMIT]
        )
