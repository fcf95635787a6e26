"""The drift gate: Evidently's DataDriftPreset on a bounded, seeded sample of both frames.

Evidently on full frames costs minutes and gigabytes at a million rows, while a distance between
two distributions is already stable on tens of thousands of rows. So both frames are sampled to
at most ``cfg.drift.max_sample_rows`` rows (seeded, hence reproducible), and the method and
threshold are fixed per column: Evidently would otherwise pick a method from the sample size, and
a sampled run could then disagree with a full one. Evidently computes every score and verdict and
writes the report; this module only reads its results.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.presets import DataDriftPreset

from ml_platform.config import Direction, GateMode, ProjectConfig
from ml_platform.errors import ValidationFailed
from ml_platform.gates import Verdict

GATE = "no_drift"
ColumnKind = Literal["numerical", "categorical"]
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's verdict on one column."""

    column: str
    kind: ColumnKind
    method: str
    threshold: float
    score: float
    drifted: bool
    non_numeric: int = 0  # values in the current sample that are not numbers (left out)


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift and the dataset verdict (share of drifted columns >= drift_share)."""

    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    drift_share: float
    reference_rows: int
    current_rows: int
    reference_sample_rows: int
    current_sample_rows: int
    seed: int
    seconds: float
    snapshot: Snapshot = field(repr=False, compare=False)

    @property
    def dataset_drift(self) -> bool:
        return self.share_drifted >= self.drift_share

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def message(self) -> str:
        n, total = len(self.drifted_columns), len(self.columns)
        which = ", ".join(
            f"{c.column} ({c.method} {c.score:.3g} >= {c.threshold:g})"
            if c.method not in _P_VALUE_METHODS
            else f"{c.column} ({c.method} p={c.score:.3g} < {c.threshold:g})"
            for c in self.columns
            if c.drifted
        )
        verb = "dataset drift" if self.dataset_drift else "no dataset drift"
        head = (
            f"{verb}: {n} of {total} columns drifted (share {self.share_drifted:.2f}, "
            f"limit {self.drift_share:.2f})"
        )
        sample = (
            f"; sampled {self.reference_sample_rows} of {self.reference_rows} reference and "
            f"{self.current_sample_rows} of {self.current_rows} current rows"
        )
        return head + (f": {which}" if which else "") + sample

    def verdict(self, mode: GateMode) -> Verdict:
        return Verdict(
            gate=GATE,
            passed=not self.dataset_drift,
            message=self.message(),
            observed=self.share_drifted,
            threshold=self.drift_share,
            direction=Direction.LOWER_IS_BETTER,
            mode=mode,
            details={
                "columns": {c.column: _column_dict(c) for c in self.columns},
                "drifted_columns": self.drifted_columns,
                "reference_rows": self.reference_rows,
                "current_rows": self.current_rows,
                "reference_sample_rows": self.reference_sample_rows,
                "current_sample_rows": self.current_sample_rows,
                "seed": self.seed,
            },
        )


_P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "fisher_exact", "anderson", "mannw", "t_test"})


def _column_dict(c: ColumnDrift) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "method": c.method,
        "threshold": c.threshold,
        "score": c.score,
        "drifted": c.drifted,
        "non_numeric": c.non_numeric,
    }


# --- inputs --------------------------------------------------------------------------------


def _kinds(cfg: ProjectConfig) -> dict[str, ColumnKind]:
    names = cfg.drift.columns or cfg.feature_names
    return {n: "numerical" if cfg.feature(n).is_numeric else "categorical" for n in names}


def _require_columns(df: pd.DataFrame, columns: list[str], which: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationFailed(
            f"{which} data lacks drift column(s) {missing}; the schema gate names every problem"
        )
    if len(df) == 0:
        raise ValidationFailed(f"{which} data has no rows; drift needs data on both sides")


def sample_rows(df: pd.DataFrame, columns: list[str], max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``columns``, drawn without replacement (seeded, ordered)."""
    if len(df) <= max_rows:
        return df[columns].reset_index(drop=True)
    pos = np.sort(np.random.default_rng(seed).choice(len(df), size=max_rows, replace=False))
    return df.iloc[pos, df.columns.get_indexer(columns)].reset_index(drop=True)


def _numeric(sample: pd.DataFrame, kinds: dict[str, ColumnKind]) -> dict[str, int]:
    """Make numerical columns numbers in place; return how many values were not numbers."""
    bad: dict[str, int] = {}
    for col, kind in kinds.items():
        if kind != "numerical" or pd.api.types.is_numeric_dtype(sample[col]):
            continue
        as_number = pd.to_numeric(sample[col], errors="coerce")
        bad[col] = int((as_number.isna() & sample[col].notna()).sum())
        sample[col] = as_number
    return bad


def _dataset(sample: pd.DataFrame, kinds: dict[str, ColumnKind]) -> Dataset:
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
    )
    return Dataset.from_pandas(sample, data_definition=definition)


# --- evidently -----------------------------------------------------------------------------


def _preset(cfg: ProjectConfig, kinds: dict[str, ColumnKind]) -> DataDriftPreset:
    d = cfg.drift
    methods = {c: d.method if k == "numerical" else d.categorical_method for c, k in kinds.items()}
    return DataDriftPreset(
        columns=list(kinds),
        drift_share=d.drift_share,
        per_column_method=methods,  # fixed, so Evidently never picks one from the sample size
        per_column_threshold={c: d.column_threshold for c in kinds},
        include_tests=True,
    )


def _drift_flags(snap: dict[str, Any]) -> dict[str, bool]:
    """Evidently's own per-column verdict: the ValueDrift test failed means drift."""
    flags: dict[str, bool] = {}
    for test in snap.get("tests", []):
        if test.get("id") == "drift":
            flags[test["metric_config"]["metric_id"]] = test["status"] == "FAIL"
    return flags


def _read_columns(
    snap: dict[str, Any], kinds: dict[str, ColumnKind], non_numeric: dict[str, int]
) -> tuple[tuple[ColumnDrift, ...], float]:
    flags = _drift_flags(snap)
    by_column: dict[str, ColumnDrift] = {}
    share = float("nan")
    for m in snap["metrics"]:
        cfg = m["config"]
        if cfg["type"] == _DRIFTED_COUNT:
            share = float(m["value"]["share"])
        elif cfg["type"] == _VALUE_DRIFT:
            col = cfg["column"]
            by_column[col] = ColumnDrift(
                column=col,
                kind=kinds[col],
                method=str(cfg["method"]),
                threshold=float(cfg["threshold"]),
                score=float(m["value"]),
                drifted=flags[m["id"]],
                non_numeric=non_numeric.get(col, 0),
            )
    return tuple(by_column[c] for c in kinds), share


def run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: ProjectConfig
) -> tuple[Snapshot, tuple[ColumnDrift, ...], float]:
    """Evidently's drift preset on two frames as given (no sampling): snapshot, columns, share."""
    kinds = _kinds(cfg)
    ref, cur = reference[list(kinds)].copy(), current[list(kinds)].copy()
    non_numeric = _numeric(cur, kinds)
    _numeric(ref, kinds)
    snapshot = Report([_preset(cfg, kinds)], include_tests=True).run(
        current_data=_dataset(cur, kinds), reference_data=_dataset(ref, kinds)
    )
    columns, share = _read_columns(snapshot.dict(), kinds, non_numeric)
    return snapshot, columns, share


def compute_drift(reference: pd.DataFrame, current: pd.DataFrame, cfg: ProjectConfig) -> DriftResult:
    """Drift of ``current`` against ``reference`` on seeded samples of both, scored by Evidently."""
    started = time.perf_counter()
    d = cfg.drift
    columns = list(_kinds(cfg))
    _require_columns(reference, columns, "reference")
    _require_columns(current, columns, "current")
    ref = sample_rows(reference, columns, d.max_sample_rows, d.seed)
    cur = sample_rows(current, columns, d.max_sample_rows, d.seed)
    snapshot, per_column, share = run_evidently(ref, cur, cfg)
    return DriftResult(
        columns=per_column,
        share_drifted=share,
        drift_share=d.drift_share,
        reference_rows=len(reference),
        current_rows=len(current),
        reference_sample_rows=len(ref),
        current_sample_rows=len(cur),
        seed=d.seed,
        seconds=time.perf_counter() - started,
        snapshot=snapshot,
    )


def write_drift_report(result: DriftResult, out_dir: str | Path) -> dict[str, Path]:
    """Evidently's HTML and JSON report plus the gate's own summary, in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "drift_html": out / "drift.html",
        "drift_json": out / "drift.json",
        "drift_summary": out / "drift_summary.json",
    }
    result.snapshot.save_html(str(paths["drift_html"]))
    result.snapshot.save_json(str(paths["drift_json"]))
    summary = result.verdict(GateMode.BLOCKING).to_dict()
    summary.pop("mode")  # the report states facts; the gate's mode belongs to the caller
    summary["seconds"] = round(result.seconds, 3)
    paths["drift_summary"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return paths
