"""The use cases behind the asset graph: one function per asset, no orchestration in them.

Each function takes plain inputs (a pinned data snapshot, the project config, backends) and
returns a result with a ``summary``/``metadata()`` of plain values, the verdicts it produced and
the report files it wrote. The Dagster layer only turns those into metadata.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ml_platform import dataset, drift, evaluation, training, validation
from ml_platform.config import ProjectConfig
from ml_platform.data.store import Commit, DataStore
from ml_platform.errors import NotFoundError
from ml_platform.gates import Verdict
from ml_platform.tracking import ModelRef, ModelRegistry

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class DataSnapshot:
    """The project's table exactly as it is at one data commit."""

    project: str
    repository: str
    path: str
    commit: Commit
    frame: pd.DataFrame = field(repr=False)

    def preview_markdown(self, rows: int = 5) -> str:
        return self.frame.head(rows).to_markdown(index=False)


def load_snapshot(store: DataStore, cfg: ProjectConfig, commit_id: str | None) -> DataSnapshot:
    """Read the dataset at ``commit_id`` (the run's pinned commit), or the branch head if unpinned."""
    repo = cfg.dataset.repository
    ref = commit_id or cfg.dataset.branch
    resolved = store.resolve_ref(repo, ref)
    commit = store.get_commit(repo, resolved)
    with store.open(repo, commit.id, cfg.dataset.path) as stream:
        frame = dataset.load_frame(stream, cfg.dataset.path)
    return DataSnapshot(cfg.name, repo, cfg.dataset.path, commit, frame)


def snapshot_summary(snap: DataSnapshot) -> dict[str, Any]:
    c = snap.commit
    return {
        "data_commit": c.id,
        "repository": snap.repository,
        "path": snap.path,
        "commit_message": c.message,
        "commit_author": c.author,
        "commit_time": c.created_at.isoformat(),
        "rows": len(snap.frame),
        "columns": len(snap.frame.columns),
        "preview": "|" + snap.preview_markdown()[1:] if len(snap.frame) else "_empty_",
    }


def row_count_verdict(snap: DataSnapshot, cfg: ProjectConfig) -> Verdict:
    n, need = len(snap.frame), cfg.gates.min_rows
    ok = n >= need
    return Verdict(
        gate="row_count",
        passed=ok,
        message=f"{n} rows {'≥' if ok else '<'} the minimum {need}"
        + ("" if ok else "; commit more data before training"),
        observed=n,
        threshold=need,
        mode=cfg.gates.mode("row_count"),
    )


def _report_dir(reports: Path, snap: DataSnapshot) -> Path:
    d = reports / snap.project / snap.commit.id[:12]
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass(frozen=True)
class GateOutcome:
    """A gate computed by an asset: its verdict, a plain summary and the report files written."""

    verdict: Verdict
    summary: Mapping[str, Any]
    paths: Mapping[str, Path]

    def metadata(self) -> dict[str, Any]:
        return dict(self.summary)


def validate_snapshot(snap: DataSnapshot, cfg: ProjectConfig, reports: Path) -> GateOutcome:
    result = validation.validate_frame(snap.frame, cfg)
    verdict = result.verdict(cfg.gates.mode("schema_valid"))
    paths = validation.write_validation_report(result, _report_dir(reports, snap))
    summary: dict[str, Any] = {
        "data_commit": snap.commit.id,
        "passed": result.passed,
        "rows": result.n_rows,
        "failure_cases": result.n_failure_cases,
        "failures_by_check": dict(result.error_counts),
    }
    if not result.passed:
        summary["failure_cases_table"] = "|" + result.failure_cases.to_markdown(index=False)[1:]
    return GateOutcome(verdict, summary, paths)


def reference_commit(store: DataStore, cfg: ProjectConfig, registry: ModelRegistry) -> tuple[str, str]:
    """The drift reference: the champion's training data, else the dataset's first commit."""
    champion = registry.get_alias(cfg.name, CHAMPION)
    if champion is not None and champion.data_commit:
        return champion.data_commit, f"data the champion (version {champion.version}) was trained on"
    history = store.log(cfg.dataset.repository, cfg.dataset.branch)
    for commit in reversed(history):
        if cfg.dataset.path in store.list_files(cfg.dataset.repository, commit.id, cfg.dataset.path):
            return commit.id, "the first commit of the dataset (no champion yet)"
    raise NotFoundError(f"{cfg.dataset.path} is in no commit of {cfg.dataset.repository}/{cfg.dataset.branch}")


def drift_snapshot(
    snap: DataSnapshot, cfg: ProjectConfig, store: DataStore, registry: ModelRegistry, reports: Path
) -> GateOutcome:
    ref_id, why = reference_commit(store, cfg, registry)
    reference = load_snapshot(store, cfg, ref_id)
    result = drift.compute_drift(reference.frame, snap.frame, cfg)
    verdict = result.verdict(cfg.gates.mode("no_drift"))
    paths = drift.write_drift_report(result, _report_dir(reports, snap))
    summary = {
        "data_commit": snap.commit.id,
        "reference_commit": ref_id,
        "reference": why,
        "drifted_share": result.share_drifted,
        "drift_share_limit": cfg.drift.drift_share,
        "drifted_columns": [c.column for c in result.columns if c.drifted],
    }
    return GateOutcome(verdict, summary, paths)


@dataclass(frozen=True)
class Candidate:
    """A trained, registered model version and where it came from."""

    ref: ModelRef
    data_commit: str
    code_sha: str
    train_rows: int
    holdout_rows: int
    train_seconds: float
    # P(positive) of the in-memory model on the first rows of the holdout, before it was saved:
    # the round_trip gate compares the registered artifact, reloaded, against exactly these.
    reference_scores: tuple[float, ...] = field(default=(), repr=False)

    def metadata(self) -> dict[str, Any]:
        return {
            "registered_model": self.ref.name,
            "model_version": self.ref.version,
            "model_uri": self.ref.model_uri,
            "mlflow_run_id": self.ref.run_id,
            "alias": CHALLENGER,
            "digest": self.ref.digest,
            "artifact_bytes": self.ref.size_bytes,
            "data_commit": self.data_commit,
            "code_sha": self.code_sha,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "train_seconds": round(self.train_seconds, 3),
        }


def train_candidate(
    snap: DataSnapshot,
    cfg: ProjectConfig,
    registry: ModelRegistry,
    *,
    code_sha: str,
    run_tags: Mapping[str, str],
) -> Candidate:
    started = time.perf_counter()
    train_df, holdout_df = training.split_holdout(snap.frame, cfg)
    trained = training.train(train_df, cfg, holdout_rows=len(snap.frame) - len(train_df))
    sample = holdout_df.head(cfg.gates.artifact.round_trip_sample_rows)
    ref = registry.log_candidate(
        cfg,
        trained,
        params={"estimator": cfg.model.estimator, "seed": cfg.model.seed, **cfg.model.params},
        tags={**run_tags, "data_commit": snap.commit.id, "code_sha": code_sha},
        input_example=train_df[cfg.training_features].head(5),
        data_commit=snap.commit.id,
        code_sha=code_sha,
    )
    return Candidate(
        ref=ref,
        data_commit=snap.commit.id,
        code_sha=code_sha,
        train_rows=len(train_df),
        holdout_rows=len(snap.frame) - len(train_df),
        train_seconds=time.perf_counter() - started,
        reference_scores=tuple(float(x) for x in trained.predict_proba(sample)[:, 1]),
    )


@dataclass(frozen=True)
class EvaluationOutcome:
    candidate: Candidate
    metrics: Mapping[str, float]
    verdict: Verdict
    paths: Mapping[str, Path]

    def metadata(self) -> dict[str, Any]:
        return {
            **{f"metric/{k}": v for k, v in self.metrics.items()},
            "model_version": self.candidate.ref.version,
            "data_commit": self.candidate.data_commit,
        }


def evaluate_candidate(
    snap: DataSnapshot, candidate: Candidate, cfg: ProjectConfig, registry: ModelRegistry, reports: Path
) -> EvaluationOutcome:
    _, holdout = training.split_holdout(snap.frame, cfg)
    model = registry.load_sklearn(candidate.ref)
    result = evaluation.evaluate(model, holdout, cfg)
    verdict = evaluation.threshold_verdict(result.metrics, cfg)
    path = evaluation.write_evaluation(result, _report_dir(reports, snap))
    registry.log_metrics(candidate.ref.run_id, {f"holdout_{k}": v for k, v in result.metrics.items()})
    return EvaluationOutcome(candidate, dict(result.metrics), verdict, {"evaluation": path})


@dataclass(frozen=True)
class MonitorOutcome:
    """The serving monitor on production: its result, the model it judged, reports written."""

    result: Any  # ml_platform.monitoring.MonitorResult
    champion_version: int
    reference_commit: str
    paths: Mapping[str, Path]

    def metadata(self) -> dict[str, Any]:
        return {**self.result.metadata(), "champion_version": self.champion_version,
                "reference_commit": self.reference_commit}


def monitor_snapshot(cfg: ProjectConfig, store: DataStore, registry: ModelRegistry, paths: Any,
                     *, min_rows: int = 200) -> MonitorOutcome:
    """:func:`ml_platform.monitoring.monitor_production` against the champion's training rows."""
    from datetime import UTC, datetime

    from ml_platform import monitoring, training
    from ml_platform.errors import DeploymentError

    champion = registry.get_alias(cfg.name, CHAMPION)
    if champion is None or not champion.data_commit:
        raise DeploymentError(f"{cfg.name} has no champion in production yet: the serving monitor "
                              f"judges live traffic against the champion's training data; deploy a "
                              f"model first (materialize {cfg.name}/production_rollout)")
    snap = load_snapshot(store, cfg, champion.data_commit)
    train_rows, _ = training.split_holdout(snap.frame, cfg)
    result = monitoring.monitor_production(cfg, paths, train_rows, min_rows=min_rows)
    written: Mapping[str, Path] = {}
    if result.drift is not None:
        out = paths.reports / cfg.name / "serving" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out.mkdir(parents=True, exist_ok=True)
        written = drift.write_drift_report(result.drift, out)
    return MonitorOutcome(result, champion.version, champion.data_commit, written)
