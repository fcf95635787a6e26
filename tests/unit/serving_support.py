"""A tiny MLflow sklearn model for the serving tests (unit, integration and bench share it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

FEATURES = ("amount", "visits", "city", "member")
CITIES = ("paris", "lyon", "nice")


def make_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numeric, one categorical and one boolean column; the label depends on all four."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": rng.normal(50.0, 20.0, n),
        "visits": rng.integers(0, 20, n).astype(np.int64),
        "city": rng.choice(CITIES, n).astype(object),
        "member": rng.random(n) < 0.3,
    })
    logit = (0.05 * (frame["amount"] - 50) + 0.2 * (frame["visits"] - 10)
             + np.where(frame["city"] == "paris", 1.0, -0.5) + frame["member"] * 0.8)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, label


def save_model(dest: Path, n: int = 400, seed: int = 0) -> Path:
    """Train the pipeline and save it with an inferred signature; returns the model directory."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = make_frame(n, seed)
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["amount", "visits"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("flag", "passthrough", ["member"]),
    ])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)
    mlflow.sklearn.save_model(model, str(dest), signature=infer_signature(X, model.predict(X)))
    return dest


def one_record(i: int = 0) -> dict[str, object]:
    X, _ = make_frame(i + 1, seed=7)
    row = X.iloc[i]
    return {"amount": float(row["amount"]), "visits": int(row["visits"]),
            "city": str(row["city"]), "member": bool(row["member"])}


@contextlib.asynccontextmanager
async def asgi_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on an in-process ASGI app, with the app's lifespan running around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
