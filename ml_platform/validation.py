"""The schema gate: a Pandera schema built from the project config, validated lazily.

Pandera's lazy mode is slow and memory-hungry on large frames with failures: it pays a fixed
cost per failing column (consolidating failure-case frames twice) and copies columns as it goes.
So :func:`validate_frame` first turns the schema's own rules (Pandera's ``try_coerce`` for
dtypes, nullability, and the built-in range / isin checks) into vectorised masks, then:

* nothing broken: Pandera checks the column set and the dtypes of the coerced frame;
* something broken: Pandera validates only the offending rows of every column it must judge
  itself (values it cannot coerce, missing and unexpected columns) plus one "witness" column
  whose mask counts it must confirm; the other failing columns are counted by the masks and
  shown with examples.

Verdicts and failure counts per check equal one plain full-frame lazy Pandera validation (the
tests assert it on many corrupted frames). Plain Pandera runs instead whenever the schema holds
a check the masks do not reproduce (e.g. a custom ``schema_class`` with a dataframe check), or
whenever Pandera and the masks disagree.
"""

from __future__ import annotations

import html
import importlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ml_platform._schema_masks import ColumnScan, MaskPlan, examples, mask_plan, scan_column
from ml_platform.config import Direction, FeatureSpec, GateMode, ProjectConfig
from ml_platform.errors import ConfigError
from ml_platform.gates import Verdict

GATE = "schema_valid"
FAILURE_COLUMNS = ["column", "check", "failure_case", "index"]
Strategy = Literal["masked", "full"]

_DTYPES: dict[str, tuple[str, str]] = {  # config dtype -> (pandas dtype, nullable pandas dtype)
    "int": ("int64", "Int64"),  # numpy int64 cannot hold NA
    "float": ("float64", "float64"),
    "category": ("category", "category"),
    "bool": ("bool", "boolean"),
    "str": ("str", "str"),
}


# --- schema ------------------------------------------------------------------------------


def _bound(spec: FeatureSpec, value: float) -> float | int:
    return int(value) if spec.dtype == "int" and float(value).is_integer() else value


def _feature_checks(spec: FeatureSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if spec.min is not None and spec.max is not None:
        checks.append(pa.Check.in_range(_bound(spec, spec.min), _bound(spec, spec.max)))
    elif spec.min is not None:
        checks.append(pa.Check.ge(_bound(spec, spec.min)))
    elif spec.max is not None:
        checks.append(pa.Check.le(_bound(spec, spec.max)))
    if spec.allowed is not None:
        checks.append(pa.Check.isin(list(spec.allowed)))
    return checks


def _feature_column(spec: FeatureSpec) -> pa.Column:
    plain, nullable = _DTYPES[spec.dtype]
    return pa.Column(
        nullable if spec.nullable else plain,
        _feature_checks(spec),
        nullable=spec.nullable,
        coerce=True,
        description=spec.description or None,
    )


def _target_column(cfg: ProjectConfig) -> pa.Column:
    label = cfg.positive_label
    if isinstance(label, bool):
        return pa.Column("bool", nullable=False, coerce=True)  # a bool column is binary already
    if isinstance(label, int) and label in (0, 1):
        return pa.Column("int64", pa.Check.isin([0, 1]), nullable=False, coerce=True)
    binary = pa.Check(
        lambda s: s.nunique(dropna=True) <= 2,
        name="binary",
        error=f"target must have at most two labels (positive label {label!r})",
    )
    return pa.Column("int64" if isinstance(label, int) else "str", binary, nullable=False, coerce=True)


def _import_schema(path: str) -> pa.DataFrameSchema:
    module_name, sep, attr = path.partition(":")
    if not (sep and module_name and attr):
        raise ConfigError(f"'{path}' must look like 'pkg.module:Class'", field="schema_class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            f"cannot import module '{module_name}' ({e}); is it installed or on PYTHONPATH?",
            field="schema_class",
        ) from e
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, pa.DataFrameModel)):
        raise ConfigError(
            f"'{path}' is {type(model).__name__ if model is not None else 'missing'}, "
            "expected a pandera.pandas.DataFrameModel subclass",
            field="schema_class",
        )
    return model.to_schema()


def build_schema(cfg: ProjectConfig) -> pa.DataFrameSchema:
    """The project's Pandera schema: ``cfg.schema_class`` if set, else one built from the config.

    Every feature and the target is a required column with its dtype (coerced), nullability,
    range and allowed values; no other column may appear (strict); the target must be binary.
    """
    if cfg.schema_class:
        return _import_schema(cfg.schema_class)
    key = cfg.model_dump_json(include={"name", "target", "positive_label", "features"})
    schema = _SCHEMA_CACHE.get(key)
    if schema is None:
        if len(_SCHEMA_CACHE) >= 32:
            _SCHEMA_CACHE.clear()
        schema = _SCHEMA_CACHE[key] = _schema_from_config(cfg)
    return schema


# Building a Pandera schema costs tens of ms (it deep-copies its columns), a noticeable part of
# the gate; like DataFrameModel.to_schema(), the built schema is shared, keyed by what shapes it.
_SCHEMA_CACHE: dict[str, pa.DataFrameSchema] = {}


def _schema_from_config(cfg: ProjectConfig) -> pa.DataFrameSchema:
    columns = {spec.name: _feature_column(spec) for spec in cfg.features}
    columns[cfg.target] = _target_column(cfg)
    return pa.DataFrameSchema(columns, strict=True, coerce=True, name=cfg.name)


# --- result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of the schema gate on one frame."""

    passed: bool
    n_rows: int
    n_failure_cases: int
    error_counts: Mapping[str, int]  # "column: check" -> failure cases
    failure_cases: pd.DataFrame = field(repr=False, compare=False)  # head: column, check, failure_case, index
    # coerced, if passed (the input frame itself when no column needed coercion)
    frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    strategy: Strategy = "full"
    seconds: float = 0.0
    schema_name: str = ""

    def message(self) -> str:
        if self.passed:
            return f"all {self.n_rows} rows match the schema"
        by_column: dict[str, list[str]] = {}
        for key, count in self.error_counts.items():
            column, _, check = key.partition(": ")
            by_column.setdefault(column, []).append(_short_check(check, count))
        parts = [f"{c} ({', '.join(v)})" for c, v in by_column.items()]
        n_cols = len(by_column)
        return (
            f"{self.n_failure_cases} failure case{'s' * (self.n_failure_cases != 1)} in "
            f"{n_cols} column{'s' * (n_cols != 1)}: " + ", ".join(parts)
        )

    def verdict(self, mode: GateMode) -> Verdict:
        return Verdict(
            gate=GATE,
            passed=self.passed,
            message=self.message(),
            observed=self.n_failure_cases,
            threshold=0,
            direction=Direction.LOWER_IS_BETTER,
            mode=mode,
            details={
                "rows": self.n_rows,
                "error_counts": dict(self.error_counts),
                "failure_cases": _records(self.failure_cases),
            },
        )


_COLUMN_LEVEL = {"column_in_dataframe": "missing column", "column_in_schema": "unexpected column"}


def _short_check(check: str, count: int) -> str:
    """A check's failures as a reader wants them: 'in_range 18..100: 20', 'missing column'."""
    if check in _COLUMN_LEVEL:
        return _COLUMN_LEVEL[check]
    m = re.fullmatch(r"in_range\((.+), (.+)\)", check)
    if m:
        check = f"in_range {m.group(1)}..{m.group(2)}"
    elif check.startswith(("isin(", "notin(")):
        check = check.split("(", 1)[0]
    elif m := re.fullmatch(r"coerce_dtype\('(.+)'\)", check):
        check = f"not coercible to {m.group(1)}"
    elif m := re.fullmatch(r"dtype\('(.+)'\)", check):
        check = f"dtype not {m.group(1)}"
    return f"{check}: {count}"


def _records(fc: pd.DataFrame) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in row.items()} for row in fc.to_dict("records")]


def _failure_table(fc: pd.DataFrame) -> pd.DataFrame:
    """Pandera's failure cases as (column, check, failure_case, index); column-level failures
    name the missing or unexpected column (Pandera puts the schema name there)."""
    column_level = fc["check"].isin(["column_in_schema", "column_in_dataframe"]).to_numpy()
    column = np.where(column_level, fc["failure_case"].astype(str), fc["column"].astype(str))
    return fc.assign(column=column)[FAILURE_COLUMNS].reset_index(drop=True)


def _counts(fc: pd.DataFrame) -> dict[str, int]:
    keys = fc["column"].astype(str) + ": " + fc["check"].astype(str)
    return {str(k): int(v) for k, v in keys.value_counts(sort=False).items()}


def _spread(fc: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """Up to ``max_rows`` failure cases, taking the first few of every check in turn."""
    rank = fc.groupby(["column", "check"], sort=False).cumcount()
    order = np.argsort(rank.to_numpy(), kind="stable")
    return fc.iloc[order[:max_rows]].reset_index(drop=True)


def _failed(
    fc: pd.DataFrame, counts: dict[str, int], n_rows: int, max_rows: int, strategy: Strategy
) -> ValidationResult:
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return ValidationResult(
        passed=False,
        n_rows=n_rows,
        n_failure_cases=sum(counts.values()),
        error_counts=ordered,
        failure_cases=_spread(fc, max_rows),
        strategy=strategy,
    )


def _passed(frame: pd.DataFrame, strategy: Strategy) -> ValidationResult:
    empty = pd.DataFrame(columns=FAILURE_COLUMNS)
    return ValidationResult(True, len(frame), 0, {}, empty, frame, strategy)


# --- validation ------------------------------------------------------------------------------

# Pandera's lazy mode pays a fixed cost per failing column (it consolidates each column's
# failure cases into a frame, then all of them again), whatever the number of rows. Pandera
# therefore reports at most this many failing columns whose failures the masks fully explain;
# their counts must equal the masks' counts, which checks the masks on every failed run.
_WITNESS_COLUMNS = 1


def _run(schema: pa.DataFrameSchema, df: pd.DataFrame) -> pd.DataFrame | SchemaErrors:
    """Pandera lazy validation on a shallow copy (coercion must not touch the caller's frame)."""
    try:
        return schema.validate(df.copy(deep=False), lazy=True, inplace=True)
    except SchemaErrors as e:
        return e


def _full(schema: pa.DataFrameSchema, df: pd.DataFrame, max_rows: int) -> ValidationResult:
    """Plain full-frame lazy Pandera: the reference every other path must agree with."""
    out = _run(schema, df)
    if isinstance(out, SchemaErrors):
        fc = _failure_table(out.failure_cases)
        return _failed(fc, _counts(fc), len(df), max_rows, "full")
    return _passed(out, "full")


def _structure_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """The same columns, dtypes, nullability and strictness, without value checks or coercion.

    Built afresh because ``update_columns`` deep-copies the whole schema on every call.
    """
    columns = {
        name: pa.Column(col.dtype, nullable=col.nullable, required=col.required, coerce=False)
        for name, col in schema.columns.items()
    }
    return pa.DataFrameSchema(columns, strict=schema.strict, coerce=False, name=schema.name)


def _structure_pass(
    schema: pa.DataFrameSchema, df: pd.DataFrame, scans: dict[str, ColumnScan], max_rows: int
) -> ValidationResult:
    """No value rule broken: Pandera checks the columns and dtypes of the coerced frame.

    Pandera sees zero rows: it writes every validated column back into the frame, which copies
    all of them, and the row-level rules (nulls, ranges, allowed values) were already decided by
    the masks built from its own checks.
    """
    changed = {n: s.values for n, s in scans.items() if s.values is not df[n]}
    typed = df.copy(deep=False) if changed else df
    for name, values in changed.items():
        typed[name] = values
    out = _run(_structure_schema(schema), typed.iloc[:0])
    if isinstance(out, SchemaErrors):  # the masks missed something: Pandera does it all
        return _full(schema, df, max_rows)
    return _passed(typed, "masked")


def _pandera_part(
    schema: pa.DataFrameSchema, df: pd.DataFrame, scans: list[ColumnScan], missing: list[str]
) -> pd.DataFrame | None:
    """Pandera's failure cases for ``scans``' columns and every column-level problem."""
    names = [s.name for s in scans]
    suspects = np.zeros(len(df), dtype=bool)
    for scan in scans:
        suspects |= scan.suspects()
    keep = [c for c in df.columns if c in names or c not in schema.columns]  # extras stay
    frame = df.iloc[np.flatnonzero(suspects), df.columns.get_indexer(keep)]
    # A schema of just these columns (select_columns would deep-copy the whole schema).
    part = pa.DataFrameSchema(
        {c: schema.columns[c] for c in [*names, *missing]},
        strict=schema.strict,
        coerce=schema.coerce,
        name=schema.name,
    )
    out = _run(part, frame)
    return _failure_table(out.failure_cases) if isinstance(out, SchemaErrors) else None


def _masked(schema: pa.DataFrameSchema, plan: MaskPlan, df: pd.DataFrame, max_rows: int) -> ValidationResult:
    missing = [c for c in plan if c not in df.columns]
    has_extra = schema.strict is True and any(c not in plan for c in df.columns)
    try:
        scans = {c: scan_column(df[c], schema.columns[c], plan[c]) for c in plan if c in df.columns}
    except (TypeError, ValueError):  # data the masks cannot compare: Pandera reports it
        return _full(schema, df, max_rows)
    failing = [s for s in scans.values() if s.coercion_failed is not None or s.failures]
    if not (failing or missing or has_extra):
        return _structure_pass(schema, df, scans, max_rows)
    by_pandera = [s for s in failing if s.coercion_failed is not None]
    # The columns with the fewest failures are the cheapest witnesses.
    by_masks = sorted((s for s in failing if s.coercion_failed is None), key=lambda s: sum(s.counts.values()))
    witnesses, by_masks = by_masks[:_WITNESS_COLUMNS], by_masks[_WITNESS_COLUMNS:]
    fc = _pandera_part(schema, df, by_pandera + witnesses, missing)
    if fc is None:
        return _full(schema, df, max_rows)  # the masks saw failures Pandera does not: trust it
    counts = _counts(fc)
    names = {s.name for s in witnesses}
    seen = _counts(fc[fc["column"].isin(names)])
    if seen != {f"{s.name}: {k}": n for s in witnesses for k, n in s.counts.items()}:
        return _full(schema, df, max_rows)  # masks and Pandera disagree: trust Pandera
    counts.update({f"{s.name}: {k}": n for s in by_masks for k, n in s.counts.items()})
    k = max(1, max_rows // max(1, len(counts)))
    table = pd.concat([fc, examples(by_masks, df, k)], ignore_index=True) if by_masks else fc
    return _failed(table, counts, len(df), max_rows, "masked")


def validate_frame(df: pd.DataFrame, cfg: ProjectConfig, *, max_failure_rows: int = 50) -> ValidationResult:
    """Validate ``df`` against the project's schema, collecting every failure (lazy).

    The verdict and the failure counts per check equal one full-frame lazy Pandera validation;
    ``failure_cases`` holds up to ``max_failure_rows`` examples spread over the failing checks.
    """
    started = time.perf_counter()
    schema = build_schema(cfg)
    plan = mask_plan(schema)
    if plan is None:
        result = _full(schema, df, max_failure_rows)
    else:
        result = _masked(schema, plan, df, max_failure_rows)
    return replace(result, seconds=time.perf_counter() - started, schema_name=cfg.name)


# --- report ------------------------------------------------------------------------------


def _report_dict(result: ValidationResult) -> dict[str, Any]:
    return {
        "gate": GATE,
        "schema": result.schema_name,
        "passed": result.passed,
        "message": result.message(),
        "rows": result.n_rows,
        "failure_cases": result.n_failure_cases,
        "error_counts": dict(result.error_counts),
        "failure_cases_head": _records(result.failure_cases),
        "seconds": round(result.seconds, 4),
        "strategy": result.strategy,
    }


def _html(result: ValidationResult) -> str:
    status = "PASSED" if result.passed else "FAILED"
    counts = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in result.error_counts.items()
    )
    cases = result.failure_cases.to_html(index=False, escape=True) if len(result.failure_cases) else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Schema validation: {html.escape(result.schema_name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px}.FAILED{color:#b00}.PASSED{color:#070}</style>"
        f"</head><body><h1>Schema validation: {html.escape(result.schema_name)}</h1>"
        f"<p class='{status}'><b>{status}</b>: {html.escape(result.message())}</p>"
        f"<p>{result.n_rows} rows, {result.n_failure_cases} failure cases.</p>"
        + (
            "<h2>Failure cases per check</h2><table>"
            f"<tr><th>column: check</th><th>cases</th></tr>{counts}</table>"
            if counts
            else ""
        )
        + (f"<h2>First {len(result.failure_cases)} failure cases</h2>{cases}" if cases else "")
        + "</body></html>"
    )


def write_validation_report(result: ValidationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``validation.json`` and ``validation.html`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"validation_json": out / "validation.json", "validation_html": out / "validation.html"}
    paths["validation_json"].write_text(json.dumps(_report_dict(result), indent=2), encoding="utf-8")
    paths["validation_html"].write_text(_html(result), encoding="utf-8")
    return paths
