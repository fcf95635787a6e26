from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from definitions import build_defs
from ml_platform import dataset, demo_data
from ml_platform.config import ProjectConfig, load_project
from ml_platform.data.local import LocalDataStore
from ml_platform.settings import platform_paths
from tests.conftest import ROOT


@pytest.fixture
def churn() -> ProjectConfig:
    # Small, fast variant of the demo project: fewer boosting rounds, no bootstrap.
    # Latency budgets of staging/canary are for production hardware, not 2 shared CPUs running
    # the test suite: widened here so load on the machine does not flip a delivery gate.
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    analysis = cfg.rollout.analysis.model_copy(update={"max_p95_latency_ms": 2000.0})
    return cfg.model_copy(
        update={"model": cfg.model.model_copy(update={"params": {"max_iter": 30}}),
                "rollout": cfg.rollout.model_copy(update={"analysis": analysis})}
    )


@pytest.fixture
def store(platform_home: Path) -> LocalDataStore:
    return LocalDataStore(platform_paths().data_store)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def defs(churn: ProjectConfig, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    # Model images are tested in test_delivery.py against the real engine; here they would
    # only add minutes to every graph test.
    monkeypatch.setenv("ML_PLATFORM_IMAGES", "off")
    return build_defs([churn])


@pytest.fixture(autouse=True)
def _stop_deployments(platform_home: Path) -> Iterator[None]:
    """Whatever a test deployed (routers, model servers) is stopped when it ends."""
    yield
    from ml_platform import cd

    paths = platform_paths()
    for project in ("churn", "credit"):
        for env in ("staging", "production"):
            cd.Environment(project, env, paths).teardown()  # type: ignore[arg-type]


def commit_frame(store: LocalDataStore, cfg: ProjectConfig, frame: pd.DataFrame, message: str = "data") -> str:
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=cfg.dataset.branch)
    payload = {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)}
    return store.commit(repo, cfg.dataset.branch, payload, message=message, author="test").id


def clean_frame(rows: int = 1500, seed: int = 1) -> pd.DataFrame:
    return demo_data.generate_churn(rows, seed=seed)
