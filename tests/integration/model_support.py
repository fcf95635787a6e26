"""A tiny churn model trained and registered in a fresh platform home, for image/deploy tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_platform import training
from ml_platform.config import load_project
from ml_platform.settings import platform_paths
from ml_platform.tracking import ModelRef, ModelRegistry
from tests.conftest import ROOT
from tests.integration.test_mlflow_registry import CODE_SHA, DATA_COMMIT, churn_like_frame


@dataclass(frozen=True)
class Registered:
    home: Path
    registry: ModelRegistry
    ref: ModelRef
    sample: list[dict[str, Any]]  # JSON records of holdout rows, ready for POST /predict


def register_churn_model(home: Path, rows: int = 400) -> Registered:
    paths = platform_paths(home).ensure()
    registry = ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": {"max_iter": 20}})})
    train_df, holdout = training.split_holdout(churn_like_frame(rows, seed=1), cfg)
    trained = training.train(train_df, cfg, holdout_rows=len(holdout))
    ref = registry.log_candidate(
        cfg, trained, {"roc_auc": 0.8}, params={"max_iter": 20}, tags={},
        input_example=train_df.head(5), data_commit=DATA_COMMIT, code_sha=CODE_SHA,
    )
    features = list(trained.features)
    sample = json.loads(holdout[features].head(25).to_json(orient="records"))
    return Registered(home, registry, ref, sample)
