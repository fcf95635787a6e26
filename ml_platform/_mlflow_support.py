"""MLflow plumbing for :mod:`ml_platform.tracking`: pins, signatures, URIs and the one global swap.

Private: the registry is the public surface; these helpers exist so it stays small.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from ml_platform.config import ProjectConfig

# What the model needs at serving time, pinned to this environment (scipy: sklearn's numerics).
PINNED_PACKAGES = ("mlflow", "scikit-learn", "scipy", "pandas", "numpy", "skops")

# skops refuses to load types that can carry unchecked indices; these are the ones the platform's
# own estimators need (reviewed per estimator in ml_platform.training). Trusting them is safe here
# because a model is only loaded after its files match the digest recorded at registration.
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

_FLUENT_LOCK = threading.Lock()


def pinned_requirements() -> list[str]:
    """``name==version`` for every package the served model needs, as installed here."""
    return [f"{name}=={metadata.version(name)}" for name in PINNED_PACKAGES]


def model_input_example(frame: pd.DataFrame, cfg: ProjectConfig, features: tuple[str, ...]) -> pd.DataFrame:
    """Model input columns of ``frame``; nullable ints as float so the signature allows NaN."""
    example = frame[list(features)].copy()
    for name in features:
        spec = cfg.feature(name)
        if spec.dtype == "int" and spec.nullable:
            example[name] = example[name].astype("float64")
    return example


def as_uri(root: str | Path) -> str:
    """A URI for a folder given as a path or a URI (paths are made absolute)."""
    text = str(root)
    if isinstance(root, Path) or "://" not in text:
        return Path(text).expanduser().resolve().as_uri()
    return text.rstrip("/")


def file_uri_path(uri: str) -> Path | None:
    """The local path of a file URI (or bare path); None for remote schemes."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(url2pathname(parsed.path))
    return None


def dir_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """Point mlflow's global tracking URI at ``uri`` for one fluent call, then put it back."""
    with _FLUENT_LOCK:
        saved_env = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            with _use_tracking_uri(uri):
                yield
        finally:
            # mlflow's restore unsets the variable when no global URI was set, which would drop
            # a value the user exported; put back exactly what was there.
            if saved_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved_env
