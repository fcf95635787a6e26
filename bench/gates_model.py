"""Seconds per model gate for one candidate judged on a 100k-row holdout.

    .venv/bin/python bench/gates_model.py [--holdout-rows 100000] [--train-rows 20000]

Trains a quick HistGradientBoosting candidate and champion on synthetic data, runs every model
gate with the default config specs, and prints one row per gate. Training for the
reproducibility gate (two fits) and the smoke gate is counted in those gates' time, since that
is what a run pays for them.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from ml_platform.config import GatesSpec
from ml_platform.gates import Verdict
from ml_platform.model_gates import (
    artifact_size,
    check_reproducible,
    decide,
    dependencies_pinned,
    directory_digest,
    explainability,
    fairness,
    latency_budget,
    no_regression_vs_champion,
    render_gate_tree,
    round_trip,
    smoke_train,
    to_junit_xml,
)

FEATURES = [f"x{i}" for i in range(10)]
SENSITIVE = ["sex", "age_band"]
GATES = GatesSpec()
mode = GATES.mode


def make_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    df["sex"] = rng.integers(0, 2, n)
    df["age_band"] = rng.choice(["18-30", "31-50", "51+"], n)
    logit = df["x0"] * 1.2 - df["x1"] + 0.6 * df["x2"] * df["x3"] + 0.3 * np.sin(3 * df["x4"])
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@dataclass(frozen=True)
class Scorer:
    """P(positive) of a fitted model; a class, not a lambda, so it pickles like a real artifact."""

    model: HistGradientBoostingClassifier

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X[FEATURES])[:, 1])


def train(df: pd.DataFrame, max_iter: int = 100) -> Scorer:
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0)
    return Scorer(model.fit(df[FEATURES], df["label"]))


def timed(name: str, fn: Callable[[], Verdict], rows: list[tuple[str, float, Verdict]]) -> None:
    start = time.perf_counter()
    verdict = fn()
    rows.append((name, time.perf_counter() - start, verdict))


def _artifact(model_dir: Path) -> Verdict:
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    return artifact_size(size, GATES.artifact, GATES.mode("artifact_size"))


def run(train_df: pd.DataFrame, holdout: pd.DataFrame) -> list[tuple[str, float, Verdict]]:
    y = holdout["label"].to_numpy()
    X = holdout.drop(columns="label")
    candidate, champion = train(train_df), train(train_df, max_iter=30)
    model_dir = Path(tempfile.mkdtemp(prefix="bench-gates-"))
    (model_dir / "model.pkl").write_bytes(pickle.dumps(candidate))
    reloaded = pickle.loads((model_dir / "model.pkl").read_bytes())
    reqs = [f"{p}=={metadata.version(p)}" for p in ("numpy", "pandas", "scikit-learn")]
    scores: dict[str, np.ndarray] = {}

    def regression() -> Verdict:
        scores["candidate"] = candidate(X)  # scoring both models is part of the gate's cost
        return no_regression_vs_champion(
            y, scores["candidate"], champion(X), GATES.regression, mode("no_regression_vs_champion")
        )

    def fair() -> Verdict:
        y_pred = (scores["candidate"] >= 0.5).astype(int)
        return fairness(y, y_pred, holdout[SENSITIVE], GATES.fairness, mode("fairness"))

    gates: list[tuple[str, Callable[[], Verdict]]] = [
        (
            "smoke_train",
            lambda: smoke_train(
                train, train_df, X.head(2000), y[:2000], GATES.smoke_train, mode("smoke_train")
            ),
        ),
        (
            "reproducible",
            lambda: check_reproducible(
                lambda: train(train_df), X, GATES.reproducibility, mode("reproducible")
            ),
        ),
        ("artifact_size", lambda: _artifact(model_dir)),
        (
            "round_trip",
            lambda: round_trip(
                candidate,
                reloaded,
                X.head(GATES.artifact.round_trip_sample_rows),
                mode("round_trip"),
            ),
        ),
        ("dependencies_pinned", lambda: dependencies_pinned(reqs, mode("dependencies_pinned"))),
        ("no_regression_vs_champion", regression),
        ("fairness", fair),
        (
            "latency_budget",
            lambda: latency_budget(candidate, X, GATES.latency, mode("latency_budget")),
        ),
        (
            "explainability",
            lambda: explainability(
                candidate, X, y, GATES.explainability, SENSITIVE, mode("explainability"), seed=0
            ),
        ),
    ]
    rows: list[tuple[str, float, Verdict]] = []
    for name, gate in gates:
        timed(name, gate, rows)
    digest_start = time.perf_counter()
    directory_digest(model_dir)
    print(f"directory_digest of the model dir: {time.perf_counter() - digest_start:.3f} s")
    return rows


def report(rows: list[tuple[str, float, Verdict]], holdout_rows: int) -> None:
    verdicts = [v for _, _, v in rows]
    start = time.perf_counter()
    decision = decide(verdicts)
    to_junit_xml("bench", "v1", verdicts, decision)
    rows.append(("decide + junit", time.perf_counter() - start, verdicts[0]))
    total = sum(s for _, s, _ in rows)
    print(f"model gates on a {holdout_rows:,}-row holdout")
    print(f"{'gate':<28}{'seconds':>9}{'share':>8}  verdict")
    for name, seconds, v in rows:
        status = "" if name.startswith("decide") else ("PASS" if v.passed else "FAIL")
        print(f"{name:<28}{seconds:>9.3f}{seconds / total:>8.1%}  {status}")
    print(f"{'total':<28}{total:>9.3f}")
    print()
    print(render_gate_tree(decision, verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout-rows", type=int, default=100_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    args = parser.parse_args()
    train_df, holdout = make_data(args.train_rows, 0), make_data(args.holdout_rows, 1)
    report(run(train_df, holdout), args.holdout_rows)


if __name__ == "__main__":
    main()
