"""ModelRegistry against a real MLflow: a SQLite store and an artifact root in a temp folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from ml_platform import evaluation, tracking, training
from ml_platform.config import ProjectConfig, load_project
from ml_platform.errors import TrackingError
from ml_platform.tracking import CHALLENGER, DIGEST_TAG, ModelRef, ModelRegistry
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

DATA_COMMIT = "c0ffee" * 6 + "abcd"
CODE_SHA = "1234567890abcdef1234567890abcdef12345678"


def churn_like_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with churn.yaml's columns, as read from CSV (plain str categories)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "tenure_months": rng.integers(0, 120, n),
            "monthly_charges": rng.uniform(10, 200, n).round(2),
            "support_calls": rng.poisson(2, n),
            "data_usage_gb": rng.gamma(2.0, 20.0, n).round(1),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "contract": rng.choice(["monthly", "annual", "two_year"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "gender": rng.choice(["female", "male", "nonbinary"], n),
        }
    )
    logit = 0.6 * df["support_calls"] - 0.03 * df["tenure_months"] - 1.0
    df["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@pytest.fixture(scope="module")
def churn() -> ProjectConfig:
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": {"max_iter": 20}})})


@pytest.fixture(scope="module")
def split(churn) -> tuple[pd.DataFrame, pd.DataFrame]:
    return training.split_holdout(churn_like_frame(400, seed=1), churn)


@pytest.fixture(scope="module")
def trained(churn, split) -> training.TrainedModel:
    train_df, holdout_df = split
    return training.train(train_df, churn, holdout_rows=len(holdout_df))


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its schema migrated, made once: migrating takes seconds."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def make_registry(empty_store):
    def make(root: Path) -> ModelRegistry:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty_store, root / "mlflow.db")  # each test gets its own store
        return ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")

    return make


@pytest.fixture
def registry(make_registry, tmp_path) -> ModelRegistry:
    return make_registry(tmp_path)


def log(
    registry: ModelRegistry, cfg: ProjectConfig, model: training.TrainedModel, train_df, **kw
) -> ModelRef:
    args = {
        "params": {"estimator": cfg.model.estimator, **cfg.model.params},
        "tags": {"dagster/run_id": "run-1"},
        "input_example": train_df.head(5),
        "data_commit": DATA_COMMIT,
        "code_sha": CODE_SHA,
        **kw,
    }
    return registry.log_candidate(cfg, model, {"smoke_auc": 0.9}, **args)


def client(registry: ModelRegistry) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)


def test_candidate_is_registered_with_challenger_alias_and_provenance(
    registry, churn, trained, split, tmp_path
) -> None:
    ref = log(registry, churn, trained, split[0])
    assert (ref.name, ref.version, ref.model_uri) == ("churn", 1, "models:/churn/1")
    assert len(ref.digest or "") == 64 and ref.size_bytes > 0
    assert ref.artifact_path.is_dir() and ref.artifact_path.is_relative_to(tmp_path / "artifacts")
    assert (ref.data_commit, ref.code_sha) == (DATA_COMMIT, CODE_SHA)
    assert registry.get_alias("churn", CHALLENGER) == ref

    c = client(registry)
    mv = c.get_model_version("churn", "1")
    assert mv.run_id == ref.run_id and mv.tags[DIGEST_TAG] == ref.digest
    run = c.get_run(ref.run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.tags[k] for k in ("data_commit", "code_sha", "project", "dagster/run_id")} == {
        "data_commit": DATA_COMMIT,
        "code_sha": CODE_SHA,
        "project": "churn",
        "dagster/run_id": "run-1",
    }
    assert run.data.params["max_iter"] == "20" and run.data.metrics["smoke_auc"] == 0.9
    assert run.data.metrics["train_rows"] == trained.train_rows


def test_model_files_pin_versions_and_declare_a_probability_signature(
    registry, churn, trained, split
) -> None:
    ref = log(registry, churn, trained, split[0])
    requirements = (ref.artifact_path / "requirements.txt").read_text().split()
    assert requirements == tracking.pinned_requirements()
    assert all("==" in line for line in requirements)
    info = mlflow.models.Model.load(ref.artifact_path / "MLmodel")
    assert info.signature.inputs.input_names() == churn.training_features
    assert info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 2)


def test_model_loads_back_and_predicts_identically(registry, churn, trained, split) -> None:
    ref = log(registry, churn, trained, split[0])
    X = split[1][churn.training_features]
    expected = trained.pipeline.predict_proba(X)
    assert np.array_equal(np.asarray(registry.load_model(ref).predict(X)), expected)
    assert np.array_equal(registry.load_sklearn(ref).predict_proba(X), expected)
    via_pyfunc = evaluation.evaluate(registry.load_model(ref), split[1], churn)
    assert via_pyfunc.metrics == evaluation.evaluate(trained.pipeline, split[1], churn).metrics


def test_tampered_artifact_is_refused(registry, churn, trained, split) -> None:
    ref = log(registry, churn, trained, split[0])
    with (ref.artifact_path / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(TrackingError, match="was modified or corrupted"):
        registry.load_model(ref)
    with pytest.raises(TrackingError, match="was modified or corrupted"):
        registry.load_sklearn(ref)


def test_stale_reference_digest_is_refused(registry, churn, trained, split) -> None:
    ref = log(registry, churn, trained, split[0])
    forged = ModelRef(**{**ref.__dict__, "digest": "0" * 64})
    with pytest.raises(TrackingError, match="differs from the registry"):
        registry.load_model(forged)


def test_second_candidate_becomes_version_2_and_the_alias_moves(registry, churn, trained, split) -> None:
    first = log(registry, churn, trained, split[0])
    retrained = training.train(churn_like_frame(400, seed=2), churn)
    second = log(registry, churn, retrained, split[0], data_commit="d" * 40)
    assert (first.version, second.version) == (1, 2)
    assert first.digest != second.digest
    challenger = registry.get_alias("churn", CHALLENGER)
    assert challenger is not None and challenger.version == 2 and challenger.data_commit == "d" * 40
    # the earlier version is still there and still loads
    assert registry.load_model(first) is not None


def test_failed_logging_ends_the_run_failed_and_keeps_the_alias(
    registry, churn, trained, split, monkeypatch
) -> None:
    first = log(registry, churn, trained, split[0])

    def broken_log_model(*args, **kwargs):
        raise MlflowException("artifact store is full")

    monkeypatch.setattr(mlflow.sklearn, "log_model", broken_log_model)
    with pytest.raises(TrackingError, match="artifact store is full"):
        log(registry, churn, trained, split[0])
    c = client(registry)
    statuses = sorted(r.info.status for r in c.search_runs([registry.ensure_experiment("churn")]))
    assert statuses == ["FAILED", "FINISHED"]
    models = c.search_logged_models(experiment_ids=[registry.ensure_experiment("churn")])
    assert sorted(str(m.status) for m in models) == ["FAILED", "READY"]
    assert registry.get_alias("churn", CHALLENGER) == first


def test_registries_do_not_leak_global_mlflow_state(
    make_registry, churn, trained, split, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///somewhere-else.db")
    before = mlflow.get_tracking_uri()
    a, b = make_registry(tmp_path / "a"), make_registry(tmp_path / "b")
    log(a, churn, trained, split[0])
    assert mlflow.get_tracking_uri() == before
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///somewhere-else.db"
    assert not (Path.cwd() / "somewhere-else.db").exists()
    assert b.get_alias("churn", CHALLENGER) is None
    assert a.get_alias("churn", CHALLENGER) is not None


def test_aliases_tags_artifacts_and_runs(registry, churn, trained, split, tmp_path) -> None:
    assert registry.get_alias("nope", "champion") is None  # unknown model
    ref = log(registry, churn, trained, split[0])
    assert registry.get_alias("churn", "champion") is None  # unknown alias
    registry.set_alias("churn", "champion", ref.version)
    assert registry.get_alias("churn", "champion") == ref
    registry.set_version_tags("churn", ref.version, {"ml_platform.decision": "PROMOTE"})
    tags = registry.get_version_tags("churn", ref.version)
    assert tags["ml_platform.decision"] == "PROMOTE" and tags[DIGEST_TAG] == ref.digest

    report = tmp_path / "evaluation.json"
    report.write_text("{}")
    registry.log_artifact(ref.run_id, report)
    registry.log_metrics(ref.run_id, {"holdout_roc_auc": 0.8})
    c = client(registry)
    assert [f.path for f in c.list_artifacts(ref.run_id)] == ["evaluation.json"]
    assert c.get_run(ref.run_id).data.metrics["holdout_roc_auc"] == 0.8

    run_id = c.create_run(registry.ensure_experiment("churn")).info.run_id
    registry.end_run(run_id, "KILLED")
    assert c.get_run(run_id).info.status == "KILLED"


def test_experiment_artifacts_live_under_the_artifact_root(registry, tmp_path) -> None:
    experiment_id = registry.ensure_experiment("credit")
    assert registry.ensure_experiment("credit") == experiment_id
    location = client(registry).get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "artifacts" / "credit").resolve().as_uri()


def test_errors_are_tracking_errors_with_context(registry) -> None:
    with pytest.raises(TrackingError, match="cannot point alias 'champion' of 'ghost'"):
        registry.set_alias("ghost", "champion", 1)
    with pytest.raises(TrackingError, match="cannot read tags of version 3 of 'ghost'"):
        registry.get_version_tags("ghost", 3)
