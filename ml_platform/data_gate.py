"""The data gate on a ref: the same schema and drift gates the CI graph runs, without a run.

Used where data must be judged *before* it lands: lakeFS's pre-merge webhook
(:mod:`ml_platform.service.premerge`) and ``ml-platform data validate``. For every project whose
dataset lives in the repository, the project's file at the ref is validated with its Pandera
schema (:func:`ml_platform.validation.validate_frame`) and, if that passes, compared for drift
with the reference (:func:`ml_platform.drift.compute_drift`) under the project's own settings.

Reference for drift: the branch the data would land on (lakeFS pre-merge: the destination
branch), else the project's data branch. The CI graph compares against the champion's training
data instead; that needs the model registry, which a webhook with lakeFS's 1-minute budget and a
locked branch should not wait on. Both answer the same question: "is this data like the data we
trust now?".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ml_platform import dataset, drift, validation
from ml_platform.config import GateMode, ProjectConfig
from ml_platform.data.store import DataStore
from ml_platform.gates import Verdict

SKIPPED = "skipped"


@dataclass(frozen=True)
class ProjectGate:
    """One project's gates on one commit."""

    project: str
    path: str
    commit_id: str
    reference_commit: str | None
    verdicts: tuple[Verdict, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not any(v.blocks for v in self.verdicts)

    def to_dict(self, max_failure_cases: int = 50) -> dict[str, Any]:
        return {
            "project": self.project,
            "path": self.path,
            "commit_id": self.commit_id,
            "reference_commit": self.reference_commit,
            "passed": self.passed,
            "gates": [_verdict_dict(v, max_failure_cases) for v in self.verdicts],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DataGateReport:
    """The gates of every project reading ``repository``, on the commit ``ref`` resolved to."""

    repository: str
    ref: str
    commit_id: str
    projects: tuple[ProjectGate, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.projects)

    @property
    def failed_gates(self) -> list[str]:
        return [f"{p.project}.{v.gate}" for p in self.projects for v in p.verdicts if v.blocks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "repository": self.repository,
            "ref": self.ref,
            "commit_id": self.commit_id,
            "failed_gates": self.failed_gates,
            "projects": [p.to_dict() for p in self.projects],
            "notes": list(self.notes),
        }


def _verdict_dict(v: Verdict, max_failure_cases: int) -> dict[str, Any]:
    d = v.to_dict()
    details = dict(d.get("details") or {})
    if isinstance(details.get("failure_cases"), list):
        details["failure_cases"] = details["failure_cases"][:max_failure_cases]
    d["details"] = details
    d["blocks"] = v.blocks
    return d


def projects_reading(projects: Iterable[ProjectConfig], repository: str) -> list[ProjectConfig]:
    return [p for p in projects if p.dataset.repository == repository]


def gate_ref(
    store: DataStore,
    projects: Iterable[ProjectConfig],
    repository: str,
    ref: str,
    *,
    reference_ref: str | None = None,
) -> DataGateReport:
    """Run the data gates of every project reading ``repository`` on ``ref``.

    ``ref`` is a commit id or branch name; it is resolved once and everything reads that commit.
    Raises NotFoundError when the repository or ref does not exist.
    """
    commit_id = store.resolve_ref(repository, ref)
    matching = projects_reading(projects, repository)
    if not matching:
        note = f"no project reads repository '{repository}': nothing to gate"
        return DataGateReport(repository, ref, commit_id, notes=(note,))
    results = tuple(
        gate_project(store, cfg, commit_id, reference_ref or cfg.dataset.branch) for cfg in matching
    )
    return DataGateReport(repository, ref, commit_id, results)


def gate_project(store: DataStore, cfg: ProjectConfig, commit_id: str, reference_ref: str) -> ProjectGate:
    """Schema gate, then drift gate (only on data the schema accepts), on one commit."""
    repo, path = cfg.dataset.repository, cfg.dataset.path
    if path not in store.list_files(repo, commit_id, path):
        note = f"{path} is not in {commit_id[:12]}: project '{cfg.name}' has nothing to gate here"
        return ProjectGate(cfg.name, path, commit_id, None, notes=(note,))
    frame = _frame(store, repo, commit_id, path)
    verdicts: list[Verdict] = []
    notes: list[str] = []
    schema_mode = cfg.gates.mode(validation.GATE)
    if schema_mode is not GateMode.OFF:
        verdicts.append(validation.validate_frame(frame, cfg).verdict(schema_mode))
    reference = _reference(store, cfg, reference_ref)
    drift_mode = cfg.gates.mode(drift.GATE)  # as the CI graph's no_drift check
    if drift_mode is GateMode.OFF:
        notes.append("drift gate is off for this project")
    elif any(v.blocks for v in verdicts):
        notes.append("drift gate not run: the schema gate failed, the columns cannot be trusted")
    elif reference is None:
        notes.append(f"drift gate not run: {path} is not on '{reference_ref}' yet (first data)")
    elif reference == commit_id:
        notes.append(f"drift gate not run: '{reference_ref}' is this very commit")
    else:
        ref_frame = _frame(store, repo, reference, path)
        verdicts.append(drift.compute_drift(ref_frame, frame, cfg).verdict(drift_mode))
    return ProjectGate(cfg.name, path, commit_id, reference, tuple(verdicts), tuple(notes))


def _frame(store: DataStore, repository: str, commit_id: str, path: str) -> Any:
    with store.open(repository, commit_id, path) as stream:
        return dataset.load_frame(stream, path)


def _reference(store: DataStore, cfg: ProjectConfig, reference_ref: str) -> str | None:
    """The reference commit, or None when the reference has no copy of the project's file."""
    commit = store.resolve_ref(cfg.dataset.repository, reference_ref)
    if cfg.dataset.path not in store.list_files(cfg.dataset.repository, commit, cfg.dataset.path):
        return None
    return commit


def render_text(report: DataGateReport) -> list[str]:
    """The report as lines a person reads in a terminal (the CLI prints them)."""
    lines = [f"data gate on {report.repository}@{report.ref} ({report.commit_id[:12]})"]
    for p in report.projects:
        lines.append(f"  project {p.project} ({p.path}): {'PASS' if p.passed else 'FAIL'}")
        for v in p.verdicts:
            word = "pass" if v.passed else ("FAIL" if v.blocks else "warn")
            lines.append(f"    {v.gate:<13} {word:<4}  {v.message}")
            for case in list(v.details.get("failure_cases") or [])[:10]:
                lines.append(f"        {case}")
        lines += [f"    note: {n}" for n in p.notes]
    lines += [f"  note: {n}" for n in report.notes]
    lines.append("PASS" if report.passed else f"FAIL: {', '.join(report.failed_gates)}")
    return lines
