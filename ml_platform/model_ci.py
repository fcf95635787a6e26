"""Model CI gates on a registered candidate: one function per gate, each returning a Verdict.

Every function takes the run's pinned :class:`~ml_platform.pipeline.DataSnapshot`, the
:class:`~ml_platform.pipeline.Candidate` registered from it, the project config and the model
registry, and hands the numbers to the matching ready-made gate in :mod:`ml_platform.model_gates`.
Models are always loaded back from the registry (digest-checked), so every gate judges the
artifact that would be deployed, not an in-memory object. The holdout is the one the candidate
was evaluated on: ``training.split_holdout`` of the pinned commit, deterministic per commit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml_platform import model_gates, training
from ml_platform.config import GateMode, ProjectConfig
from ml_platform.dataset import split_features_target
from ml_platform.evaluation import DECISION_THRESHOLD
from ml_platform.gates import Verdict
from ml_platform.pipeline import CHAMPION, Candidate, DataSnapshot
from ml_platform.tracking import ModelRegistry

# Which asset each gate is a check on. Data gates judge a data commit, model gates a model version.
DATA_GATES: Mapping[str, str] = {
    "row_count": "training_data",
    "schema_valid": "validation_report",
    "no_drift": "drift_report",
}
CANDIDATE_GATES: Mapping[str, str] = {
    "smoke_train": "The training code runs on a small sample and beats a prior-only baseline.",
    "reproducible": "Re-training on the same data and seed predicts what the registered model predicts.",
    "artifact_size": "The registered model artifact is within the size limit.",
    "round_trip": "The registered model, reloaded as the server loads it, predicts exactly what the "
    "in-memory model predicted before saving.",
    "dependencies_pinned": "Every requirement of the model artifact is name==version and matches this "
    "environment.",
}
EVALUATION_GATES: Mapping[str, str] = {
    "no_regression_vs_champion": "The candidate is not worse than the champion (MLflow alias 'champion') "
    "on the same holdout, beyond the tolerance.",
    "fairness": "Demographic parity and equalized odds gaps per sensitive attribute are within limits.",
    "latency_budget": "Single-row and batch prediction p95 latency of the served model flavor are within "
    "budget.",
    "explainability": "No sensitive or forbidden feature is among the top features by permutation "
    "importance.",
}
# metric_thresholds is computed inside the evaluation asset (assets/project.py), not here.
MODEL_GATE_ASSETS: Mapping[str, str] = {
    **{g: "candidate_model" for g in CANDIDATE_GATES},
    "metric_thresholds": "evaluation",
    **{g: "evaluation" for g in EVALUATION_GATES},
}


@dataclass(frozen=True)
class ModelGateOutcome:
    """A model gate's verdict and the report files it wrote (linked from the check)."""

    verdict: Verdict
    paths: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class _Holdout:
    frame: pd.DataFrame  # every configured feature (the champion may use other columns)
    X: pd.DataFrame  # the candidate's training features
    y: np.ndarray


def _holdout(snap: DataSnapshot, cfg: ProjectConfig) -> _Holdout:
    _, holdout = training.split_holdout(snap.frame, cfg)
    X, y = split_features_target(holdout, cfg)
    return _Holdout(holdout[cfg.feature_names], X, y.to_numpy(dtype=np.int8))


def _positive(raw: Any) -> np.ndarray:
    arr = np.asarray(raw, dtype=np.float64)
    return arr[:, 1] if arr.ndim == 2 else arr


def _sklearn_scores(model: Any, X: pd.DataFrame) -> np.ndarray:
    return _positive(model.predict_proba(X))


def _mode(cfg: ProjectConfig, gate: str) -> GateMode:
    return cfg.gates.mode(gate)


def _with_details(v: Verdict, **extra: Any) -> Verdict:
    return dataclasses.replace(v, details={**v.details, **extra})


# -- on candidate_model -----------------------------------------------------------------------


def smoke_train_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """Train the project's pipeline on a small sample of the training split; beat the prior."""
    train_df, _ = training.split_holdout(snap.frame, cfg)
    hold = _holdout(snap, cfg)

    def train_fn(df: pd.DataFrame) -> Callable[[pd.DataFrame], np.ndarray]:
        model = training.train(df, cfg)
        return lambda X: _positive(model.predict_proba(X))

    spec = cfg.gates.smoke_train
    return model_gates.smoke_train(train_fn, train_df, hold.X, hold.y, spec, _mode(cfg, "smoke_train"))


def reproducible_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """Re-train once with the same data and seed; compare with the registered model's scores."""
    train_df, _ = training.split_holdout(snap.frame, cfg)
    hold = _holdout(snap, cfg)
    registered = _sklearn_scores(registry.load_sklearn(candidate.ref), hold.X)
    retrained = _sklearn_scores(training.train(train_df, cfg).pipeline, hold.X)
    verdict = model_gates.reproducible(
        registered, retrained, cfg.gates.reproducibility, _mode(cfg, "reproducible")
    )
    return _with_details(verdict, compared="registered model vs a re-training", seed=cfg.model.seed)


def artifact_size_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """The registered artifact directory's size against ``gates.artifact.max_size_mb``."""
    size = sum(p.stat().st_size for p in registry.verified_dir(candidate.ref).rglob("*") if p.is_file())
    return model_gates.artifact_size(size, cfg.gates.artifact, _mode(cfg, "artifact_size"))


def round_trip_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """The pyfunc model (what the server loads) against the pre-save scores recorded at training."""
    mode = _mode(cfg, "round_trip")
    expected = np.asarray(candidate.reference_scores, dtype=np.float64)
    if expected.size == 0:
        return Verdict(
            gate="round_trip",
            passed=False,
            mode=mode,
            message=f"{candidate.ref.model_uri} has no pre-save reference predictions; retrain it "
            "with this platform version (candidate_model records them)",
        )
    sample = _holdout(snap, cfg).X.head(expected.size)
    served = registry.load_model(candidate.ref)
    return model_gates.round_trip(lambda X: expected, lambda X: _positive(served.predict(X)), sample, mode)


def dependencies_pinned_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """The artifact's requirements.txt: every line name==version, consistent with this environment."""
    path = registry.verified_dir(candidate.ref) / "requirements.txt"
    mode = _mode(cfg, "dependencies_pinned")
    if not path.is_file():
        return Verdict(
            gate="dependencies_pinned",
            passed=False,
            mode=mode,
            message=f"{candidate.ref.model_uri} has no requirements.txt, so its environment "
            "cannot be rebuilt",
        )
    verdict = model_gates.dependencies_pinned(path.read_text(encoding="utf-8").splitlines(), mode)
    return _with_details(verdict, requirements_file=str(path))


# -- on evaluation ----------------------------------------------------------------------------


def no_regression_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """Candidate and champion scored side by side on the holdout of the pinned data commit."""
    hold = _holdout(snap, cfg)
    cand = _sklearn_scores(registry.load_sklearn(candidate.ref), hold.frame)
    champion = registry.get_alias(cfg.name, CHAMPION)
    if champion is not None and champion.version == candidate.ref.version:
        champion = None  # judged against itself: nothing to compare
    champ = None if champion is None else _sklearn_scores(registry.load_sklearn(champion), hold.frame)
    verdict = model_gates.no_regression_vs_champion(
        hold.y,
        cand,
        champ,
        cfg.gates.regression,
        _mode(cfg, "no_regression_vs_champion"),
        seed=cfg.model.seed,
    )
    return _with_details(
        verdict,
        champion_version=None if champion is None else champion.version,
        candidate_version=candidate.ref.version,
        holdout_data_commit=snap.commit.id,
    )


def fairness_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """Per-group rates of the candidate's 0/1 predictions on the holdout, per sensitive attribute."""
    mode = _mode(cfg, "fairness")
    if not cfg.sensitive_attributes:
        return Verdict(gate="fairness", passed=True, mode=mode, message="no sensitive attributes configured")
    hold = _holdout(snap, cfg)
    scores = _sklearn_scores(registry.load_sklearn(candidate.ref), hold.frame)
    predicted = (scores >= DECISION_THRESHOLD).astype(np.int8)
    sensitive = hold.frame[cfg.sensitive_attributes]
    return model_gates.fairness(hold.y, predicted, sensitive, cfg.gates.fairness, mode)


def latency_budget_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """p95 latency of the pyfunc model (the flavor the server runs) on holdout rows: one thread,
    in CPU time.

    CI machines are shared (here: 2 CPUs for several engineers' jobs). Measured with the default
    OpenMP thread pool and a wall clock, the same model read 8 ms idle and 425 ms p95 under load
    (its threads spin waiting for each other), so the gate would measure the neighbours. One
    thread (as one server worker answers one request) and the process's CPU time measure what
    the model itself costs; latency under real traffic is the canary analysis's job."""
    served = registry.load_model(candidate.ref)
    X = _holdout(snap, cfg).X
    mode = _mode(cfg, "latency_budget")
    with threadpool_limits(limits=1):
        spec = cfg.gates.latency
        verdict = model_gates.latency_budget(served.predict, X, spec, mode, clock=time.process_time)
    return _with_details(verdict, clock="process CPU time, 1 thread")


def explainability_gate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry
) -> Verdict:
    """Permutation importance over every configured feature, sensitive ones included, so a model
    that does not use them shows importance 0 for them."""
    hold = _holdout(snap, cfg)
    model = registry.load_sklearn(candidate.ref)
    return model_gates.explainability(
        model,
        hold.frame,
        hold.y,
        cfg.gates.explainability,
        cfg.sensitive_attributes,
        _mode(cfg, "explainability"),
        seed=cfg.model.seed,
    )


GateFn = Callable[[DataSnapshot, Candidate, ProjectConfig, ModelRegistry], Verdict]

_GATES: Mapping[str, GateFn] = {
    "smoke_train": smoke_train_gate,
    "reproducible": reproducible_gate,
    "artifact_size": artifact_size_gate,
    "round_trip": round_trip_gate,
    "dependencies_pinned": dependencies_pinned_gate,
    "no_regression_vs_champion": no_regression_gate,
    "fairness": fairness_gate,
    "latency_budget": latency_budget_gate,
    "explainability": explainability_gate,
}


def report_dir(reports: Path, candidate: Candidate, project: str) -> Path:
    d = reports / project / candidate.data_commit[:12] / f"model-v{candidate.ref.version}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_model_gate(
    gate: str,
    snap: DataSnapshot,
    candidate: Candidate,
    cfg: ProjectConfig,
    registry: ModelRegistry,
    reports: Path,
) -> ModelGateOutcome:
    """Run one model gate on ``candidate``; the explainability gate also writes its report."""
    if gate not in _GATES:
        raise KeyError(f"'{gate}' is not a model gate; known: {sorted(_GATES)}")
    verdict = _GATES[gate](snap, candidate, cfg, registry)
    if gate != "explainability":
        return ModelGateOutcome(verdict)
    json_path, html_path = model_gates.write_importance_report(
        verdict, report_dir(reports, candidate, cfg.name)
    )
    return ModelGateOutcome(verdict, {"importance_json": json_path, "importance_html": html_path})


def provenance(candidate: Candidate) -> dict[str, Any]:
    """What every model check's metadata carries, so a verdict can be tied to its model version."""
    return {
        "model_version": candidate.ref.version,
        "registered_model": candidate.ref.name,
        "mlflow_run_id": candidate.ref.run_id,
        "data_commit": candidate.data_commit,
        "code_sha": candidate.code_sha,
    }
