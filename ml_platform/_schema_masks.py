"""Vectorised masks that reproduce a Pandera schema's element-wise rules (used by validation).

Only rules whose Pandera semantics are simple and known are reproduced: dtype coercion (by
calling Pandera's own ``try_coerce``), nullability, and the built-in ``in_range``, ``ge``, ``gt``,
``le``, ``lt``, ``isin`` and ``notin`` checks (nulls ignored, as Pandera's ``ignore_na``
does). :func:`mask_plan` returns None for any schema holding something else, and the caller
then lets Pandera validate everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines.pandas_engine import Engine
from pandera.errors import ParserError

NOT_NULLABLE = "not_nullable"  # Pandera's name for the nullability check
# The complement of each rule: NaN compares False, so a null never breaks a rule (ignore_na).
_BREAKS = {"ge": np.less, "gt": np.less_equal, "le": np.greater, "lt": np.greater_equal}
_SIMPLE_CHECKS = {
    "greater_than_or_equal_to": ("ge", "min_value"),
    "greater_than": ("gt", "min_value"),
    "less_than_or_equal_to": ("le", "max_value"),
    "less_than": ("lt", "max_value"),
    "isin": ("isin", "allowed_values"),
    "notin": ("notin", "forbidden_values"),
}


@dataclass(frozen=True)
class Rule:
    """One element-wise comparison; a value breaks the rule where the comparison is False."""

    kind: Literal["ge", "gt", "le", "lt", "isin", "notin"]
    value: Any


@dataclass(frozen=True)
class CheckPlan:
    """A Pandera check as mask rules; ``key`` is how Pandera names it in failure cases."""

    key: str
    rules: tuple[Rule, ...]


MaskPlan = dict[str, tuple[CheckPlan, ...]]


def _check_key(check: pa.Check) -> str:
    # Same precedence as pandera's consolidate_failure_cases: error text, else name.
    return str(check.error if check.error is not None else check.name)


def _check_plan(check: pa.Check) -> CheckPlan | None:
    st = check.statistics or {}
    if not check.ignore_na or check.raise_warning or check.n_failure_cases is not None:
        return None
    if check.name == "in_range":
        rules = (
            Rule("ge" if st["include_min"] else "gt", st["min_value"]),
            Rule("le" if st["include_max"] else "lt", st["max_value"]),
        )
        return CheckPlan(_check_key(check), rules)
    if check.name not in _SIMPLE_CHECKS:
        return None
    kind, key = _SIMPLE_CHECKS[check.name]
    return CheckPlan(_check_key(check), (Rule(kind, st[key]),))  # type: ignore[arg-type]


def _schema_is_simple(schema: pa.DataFrameSchema) -> bool:
    return not (
        schema.checks
        or schema.parsers
        or schema.index is not None
        or schema.unique
        or schema.ordered
        or schema.add_missing_columns
        or schema.drop_invalid_rows
    )


def mask_plan(schema: pa.DataFrameSchema) -> MaskPlan | None:
    """Check plans per column, or None when any part of the schema needs full Pandera."""
    if not _schema_is_simple(schema):
        return None
    plan: MaskPlan = {}
    for name, col in schema.columns.items():
        if col.regex or col.unique or col.parsers or col.default is not None:
            return None
        checks = [_check_plan(c) for c in col.checks]
        if any(c is None for c in checks):
            return None
        plan[name] = tuple(c for c in checks if c is not None)
    return plan


def _rule_violations(values: pd.Series, rule: Rule) -> np.ndarray:
    """True where a non-null value breaks ``rule``."""
    if rule.kind in ("isin", "notin"):
        if isinstance(values.dtype, pd.CategoricalDtype):
            # Decide once per category and look the codes up: far cheaper than hashing every row.
            inside = values.cat.categories.isin(rule.value)
            bad = ~inside if rule.kind == "isin" else inside
            return np.append(bad, False)[values.cat.codes.to_numpy()]  # code -1 (NA) -> False
        inside_rows = values.isin(rule.value).to_numpy(dtype=bool)
        return (~inside_rows if rule.kind == "isin" else inside_rows) & values.notna().to_numpy()
    numpy_numeric = isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf"
    arr = values.to_numpy() if numpy_numeric else values.to_numpy("float64", na_value=np.nan)
    return _BREAKS[rule.kind](arr, rule.value)


def _coerce(series: pd.Series, col: pa.Column) -> tuple[pd.Series, np.ndarray | None]:
    """The series as Pandera coerces it, or (a numeric reading, the rows it cannot coerce)."""
    if col.dtype is None or not col.coerce or col.dtype.check(Engine.dtype(series.dtype)):
        return series, None
    # Pandera names the rows it cannot coerce by index label; a default RangeIndex makes them
    # positions.
    index = series.index
    default_index = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    positional = series if default_index else series.reset_index(drop=True)
    try:
        coerced = col.dtype.try_coerce(positional)
        coerced.index = index
        return coerced, None
    except ParserError as e:
        failed = np.zeros(len(series), dtype=bool)
        failed[e.failure_cases["index"].to_numpy(dtype="int64")] = True
    # Pandera then checks the raw column; reading it as numbers keeps every value that might
    # break a rule among the suspect rows, so Pandera sees them all.
    return pd.to_numeric(series, errors="coerce"), failed


@dataclass(frozen=True)
class ColumnScan:
    """What the masks found in one column."""

    name: str
    values: pd.Series = field(repr=False)  # coerced (or read as numbers if coercion failed)
    coercion_failed: np.ndarray | None = field(repr=False)  # rows Pandera cannot coerce
    failures: dict[str, np.ndarray] = field(repr=False)  # check key -> rows (non-empty only)

    @property
    def counts(self) -> dict[str, int]:
        return {key: int(np.count_nonzero(mask)) for key, mask in self.failures.items()}

    def suspects(self) -> np.ndarray:
        """Every row Pandera might report for this column."""
        out = np.zeros(len(self.values), dtype=bool)
        for mask in [self.coercion_failed, *self.failures.values()]:
            if mask is not None:
                out |= mask
        return out


def scan_column(series: pd.Series, col: pa.Column, checks: tuple[CheckPlan, ...]) -> ColumnScan:
    """Evaluate one column's rules; raises TypeError/ValueError on data the masks cannot read."""
    values, failed = _coerce(series, col)
    failures: dict[str, np.ndarray] = {}
    if not col.nullable and values.hasnans:
        failures[NOT_NULLABLE] = values.isna().to_numpy()
    for check in checks:
        bad = _rule_violations(values, check.rules[0])
        for rule in check.rules[1:]:
            bad |= _rule_violations(values, rule)
        if bad.any():
            failures[check.key] = failures[check.key] | bad if check.key in failures else bad
    return ColumnScan(str(series.name), values, failed, failures)


def _first_true(mask: np.ndarray, k: int) -> np.ndarray:
    """Positions of the first ``k`` True values, scanning a growing prefix instead of it all."""
    stop = 4096
    while True:
        found = np.flatnonzero(mask[:stop])
        if len(found) >= k or stop >= len(mask):
            return found[:k]
        stop *= 8


def examples(scans: list[ColumnScan], frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first ``k`` failure cases of every failing check, as (column, check, case, index)."""
    rows: dict[str, list[Any]] = {"column": [], "check": [], "failure_case": [], "index": []}
    for scan in scans:
        original = frame[scan.name]
        for key, mask in scan.failures.items():
            pos = _first_true(mask, k)
            rows["column"] += [scan.name] * len(pos)
            rows["check"] += [key] * len(pos)
            rows["failure_case"] += original.iloc[pos].tolist()
            rows["index"] += original.index[pos].tolist()
    return pd.DataFrame(rows)
