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
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    return cfg.model_copy(
        update={"model": cfg.model.model_copy(update={"params": {"max_iter": 30}})}
    )


@pytest.fixture
def store(platform_home: Path) -> LocalDataStore:
    return LocalDataStore(platform_paths().data_store)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def defs(churn: ProjectConfig) -> dg.Definitions:
    return build_defs([churn])


def commit_frame(store: LocalDataStore, cfg: ProjectConfig, frame: pd.DataFrame, message: str = "data") -> str:
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=cfg.dataset.branch)
    payload = {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)}
    return store.commit(repo, cfg.dataset.branch, payload, message=message, author="test").id


def clean_frame(rows: int = 1500, seed: int = 1) -> pd.DataFrame:
    return demo_data.generate_churn(rows, seed=seed)
