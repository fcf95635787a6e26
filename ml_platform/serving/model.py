"""Load a served model: verify its digest, read its signature, pick the fastest predict path."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.errors import DeploymentError
from ml_platform.serving.digest import directory_digest
from ml_platform.serving.schema import InputSchema

Predictions = tuple[list[Any], list[float] | None]
PredictFn = Callable[[pd.DataFrame], Predictions]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve. ``predict`` returns (predictions, P(positive) or None)."""

    predict: PredictFn
    schema: InputSchema
    version: str
    digest: str
    flavor: str
    path: Path


def _local_dir(model_dir_or_uri: str | Path, download_root: Path | None) -> Path:
    text = str(model_dir_or_uri)
    if "://" not in text and not text.startswith("models:/"):
        return Path(text)
    import mlflow  # deferred: a 1-2 s import the router and most tests never need

    dst = tempfile.mkdtemp(prefix="served-model-", dir=download_root)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=dst))
    except Exception as e:  # mlflow raises MlflowException, OSError, requests errors...
        raise DeploymentError(f"cannot download model '{text}': {e}") from e


def _check_digest(path: Path, expected: str | None) -> str:
    seen = directory_digest(path)
    if expected is not None and seen != expected.lower():
        raise DeploymentError(
            f"model at '{path}' has digest {seen}, expected {expected}: refusing to serve a "
            "model that is not the one the gates approved. Redeploy the approved artifact."
        )
    return seen


def _sklearn_predict(model: Any) -> PredictFn:
    classes = getattr(model, "classes_", None)
    if not hasattr(model, "predict_proba") or classes is None:
        return lambda frame: (np.asarray(model.predict(frame)).tolist(), None)
    classes = np.asarray(classes)
    binary = len(classes) == 2

    def predict(frame: pd.DataFrame) -> Predictions:
        # one predict_proba call instead of predict + predict_proba: for sklearn classifiers
        # predict is the argmax of predict_proba, and it halves the cost per request
        proba = model.predict_proba(frame)
        labels = classes[proba.argmax(axis=1)].tolist()
        return labels, (proba[:, 1].tolist() if binary else None)

    return predict


def _pyfunc_predict(model: Any) -> PredictFn:
    return lambda frame: (np.asarray(model.predict(frame)).tolist(), None)


def load_model(
    model_dir_or_uri: str | Path,
    *,
    expected_digest: str | None,
    input_schema: InputSchema | None = None,
    model_version: str | None = None,
    download_root: Path | None = None,
) -> LoadedModel:
    """Verify the digest *before* deserializing anything, then load.

    ``models:/`` and other URIs are downloaded first so the digest covers exactly the bytes
    that get loaded. The sklearn flavor is called directly (no pyfunc per-call overhead).
    """
    import mlflow

    path = _local_dir(model_dir_or_uri, download_root)
    digest = _check_digest(path, expected_digest)
    try:
        meta = mlflow.models.Model.load(str(path))
        if "sklearn" in meta.flavors:
            flavor, predict = "sklearn", _sklearn_predict(mlflow.sklearn.load_model(str(path)))
        else:
            flavor, predict = "pyfunc", _pyfunc_predict(mlflow.pyfunc.load_model(str(path)))
    except DeploymentError:
        raise
    except Exception as e:  # a broken artifact fails in many library-specific ways
        raise DeploymentError(f"cannot load model from '{path}': {e}") from e
    schema = input_schema or InputSchema.from_mlflow(
        meta.signature.inputs if meta.signature else None
    )
    version = model_version or _version_of(model_dir_or_uri, meta, digest)
    return LoadedModel(predict, schema, version, digest, flavor, path)


def _version_of(source: str | Path, meta: Any, digest: str) -> str:
    text = str(source)
    if text.startswith("models:/"):
        return text.removeprefix("models:/")
    return str(getattr(meta, "model_id", None) or meta.model_uuid or digest[:12])
