"""The lakeFS pre-merge data gate: token, payload validation, pass/fail answers, CLI twin."""

import json
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient
from typer.testing import CliRunner

from ml_platform import dataset, demo_data
from ml_platform.cli import app as cli_app
from ml_platform.config import ProjectConfig, load_project
from ml_platform.data.lakefs_store import LakeFSDataStore
from ml_platform.data.local import LocalDataStore
from ml_platform.data.store import DataStore
from ml_platform.errors import ConfigError
from ml_platform.service.premerge import PRE_MERGE_PATH, TOKEN_HEADER, create_app, token_matches
from ml_platform.settings import platform_paths
from tests.conftest import ROOT
from tests.lakefs_server.fixtures import (  # noqa: F401  (fixtures)
    LakeFSEndpoint,
    _lakefs_server_session,
    lakefs_server,
)

TOKEN = "s3cr3t-hook-token"
REPO = "demo-data"


@pytest.fixture
def churn() -> ProjectConfig:
    return load_project(ROOT / "projects" / "churn.yaml")


@pytest.fixture
def store(platform_home: Path) -> LocalDataStore:
    return LocalDataStore(platform_paths().data_store)


def seed(store: DataStore, cfg: ProjectConfig, bad: str | None = None) -> str:
    """main holds clean data; returns the head of a branch 'incoming' carrying ``bad`` data."""
    path = cfg.dataset.path
    store.create_repository(REPO, default_branch="main")
    clean = demo_data.generate_churn(1200, seed=1)
    store.commit(REPO, "main", {path: dataset.to_bytes(clean, path)}, message="clean", author="t")
    store.create_branch(REPO, "incoming", "main")
    frame = demo_data.generate_churn(1200, seed=2)
    if bad == "schema":
        frame = demo_data.with_out_of_range(frame, "age", 0.05, seed=3)
    elif bad == "drift":
        frame = demo_data.with_shift(frame, ["monthly_charges", "data_usage_gb", "plan"], 1.0, seed=5)
    return store.commit(REPO, "incoming", {path: dataset.to_bytes(frame, path)}, message="new", author="t").id


def payload(source_ref: str, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event_type": "pre-merge",
        "event_time": "2026-11-22T10:00:00Z",
        "action_name": "ml-platform data gate",
        "hook_id": "ml_platform_data_gate",
        "repository_id": REPO,
        "branch_id": "main",
        "source_ref": source_ref,
        "commit_message": "merge incoming",
        "committer": "ada",
        "commit_metadata": {"k": "v"},
    }
    body.update(over)
    return body


def client(store: DataStore, cfg: ProjectConfig) -> TestClient:
    return TestClient(create_app([cfg], lambda: store, TOKEN), raise_server_exceptions=False)


def post(c: TestClient, body: object, token: str | None = TOKEN):
    headers = {TOKEN_HEADER: token} if token is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return c.post(PRE_MERGE_PATH, content=data, headers={**headers, "content-type": "application/json"})


def test_clean_source_passes_with_200(store, churn) -> None:
    head = seed(store, churn)
    r = post(client(store, churn), payload(head))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["passed"] is True and doc["commit_id"] == head
    (project,) = doc["projects"]
    assert {g["gate"] for g in project["gates"]} == {"schema_valid", "no_drift"}


def test_schema_failure_answers_422_with_failure_cases(store, churn) -> None:
    head = seed(store, churn, bad="schema")
    r = post(client(store, churn), payload(head))
    assert r.status_code == 422
    doc = r.json()
    assert doc["passed"] is False and doc["failed_gates"] == ["churn.schema_valid"]
    (gate,) = doc["projects"][0]["gates"]
    cases = gate["details"]["failure_cases"]
    assert cases and any(c.get("column") == "age" for c in cases)


def test_drift_failure_answers_422(store, churn) -> None:
    head = seed(store, churn, bad="drift")
    r = post(client(store, churn), payload(head))
    assert r.status_code == 422
    assert r.json()["failed_gates"] == ["churn.no_drift"]


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_bad_or_missing_token_is_401_and_runs_nothing(store, churn, token) -> None:
    r = post(client(store, churn), payload("x"), token=token)
    assert r.status_code == 401
    assert TOKEN not in r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"event_type": "pre-merge", "branch_id": "main", "source_ref": "x"}, "repository_id"),
        ({**payload("x"), "source_ref": ""}, "source_ref"),
        (payload("x", branch_id=7), "branch_id"),
        (payload("x", event_type="post-commit"), "event_type"),
        (payload("x", commit_id=["a"]), "commit_id"),
    ],
)
def test_malformed_payload_is_400_naming_the_field(store, churn, body, field) -> None:
    r = post(client(store, churn), body)
    assert r.status_code == 400
    assert r.json()["field"] == field


def test_unknown_ref_is_404_and_garbage_never_5xx(store, churn) -> None:
    seed(store, churn)
    c = client(store, churn)
    assert post(c, payload("f" * 64)).status_code == 404
    garbage = [b"", b"null", b"\xff\xfe", b'{"event_type": null}', json.dumps(payload("../../etc")).encode()]
    for body in garbage:
        assert post(c, body).status_code < 500, body


def test_repository_no_project_reads_passes_with_a_note(store, churn) -> None:
    store.create_repository("other-data")
    r = post(client(store, churn), payload("main", repository_id="other-data"))
    assert r.status_code == 200 and "no project reads" in r.json()["notes"][0]


def test_an_unprotected_service_refuses_to_start(store, churn) -> None:
    with pytest.raises(ConfigError, match="ML_PLATFORM_HOOK_TOKEN"):
        create_app([churn], lambda: store, "")
    assert token_matches(TOKEN, TOKEN) and not token_matches(None, TOKEN)


def test_gate_over_the_lakefs_backend(lakefs_server: LakeFSEndpoint, churn) -> None:  # noqa: F811
    lakefs = LakeFSDataStore(lakefs_server.url, lakefs_server.access_key_id, lakefs_server.secret_access_key)
    # lakeFS branch ids allow no '/', hence 'incoming'.
    head = seed(lakefs, churn, bad="schema")
    r = post(client(lakefs, churn), payload(head))
    assert r.status_code == 422 and r.json()["failed_gates"] == ["churn.schema_valid"]


def test_cli_data_validate_exit_codes(store, churn, monkeypatch) -> None:
    seed(store, churn, bad="schema")
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["data", "validate", "--project", "churn", "--branch", "main"])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output
    bad = runner.invoke(cli_app, ["data", "validate", "--project", "churn", "--branch", "incoming"])
    assert bad.exit_code == 1, bad.output
    assert "schema_valid" in bad.output and "FAIL" in bad.output


def test_shipped_action_file_wires_the_endpoint_and_token_header() -> None:
    action = yaml.safe_load(
        (ROOT / "deploy/lakefs/_lakefs_actions/pre_merge_data_gate.yaml").read_text()
    )
    # PyYAML reads the bare key `on` as YAML 1.1's True; lakeFS (Go, YAML 1.2) reads "on".
    assert "pre-merge" in action.get("on", action.get(True))
    (hook,) = action["hooks"]
    assert hook["type"] == "webhook"
    assert hook["properties"]["url"].endswith(PRE_MERGE_PATH)
    (header, value), = hook["properties"]["headers"].items()
    assert header.lower() == TOKEN_HEADER and "ENV.LAKEFSACTIONS_" in value
