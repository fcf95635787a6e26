"""The input contract of ``POST /predict``: parse a JSON payload and check it against a schema.

Validation is hand-written rather than done by pandas or pydantic because it runs on every
request in front of a model that takes ~1 ms: a type check per cell is microseconds, and every
rejection must name the field so a client can fix it (never a 5xx for bad input).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from ml_platform.errors import DeploymentError

ColumnType = Literal["double", "float", "long", "integer", "string", "boolean"]
SUPPORTED_TYPES: tuple[str, ...] = get_args(ColumnType)

_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestRejected(DeploymentError):
    """A client request is malformed; carries the HTTP status and the offending field."""

    def __init__(self, message: str, *, status: int = 422, field: str | None = None,
                 row: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.row = row

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool = True


@dataclass(frozen=True)
class InputSchema:
    """Named, typed columns a model accepts (a column-based MLflow signature)."""

    columns: tuple[ColumnSpec, ...]

    def __post_init__(self) -> None:
        if not self.columns:
            raise DeploymentError("an input schema needs at least one column")
        for col in self.columns:
            if col.type not in SUPPORTED_TYPES:
                raise DeploymentError(
                    f"column '{col.name}' has type '{col.type}'; the server supports "
                    f"{', '.join(SUPPORTED_TYPES)}. Declare the column as one of those."
                )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @classmethod
    def from_mlflow(cls, schema: Any) -> InputSchema:
        """Build from ``mlflow.types.Schema`` (``signature.inputs``); tensor schemas are refused."""
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            raise DeploymentError(
                "the model signature has no named column inputs; save the model with "
                "signature=infer_signature(X_frame, ...) so requests can be validated"
            )
        return cls(tuple(
            ColumnSpec(name=c.name, type=c.type.name, required=bool(c.required))
            for c in schema.inputs
        ))


def _number_problem(v: Any, limit: float) -> str | None:
    if type(v) is float:
        return None if math.isfinite(v) and abs(v) <= limit else "must be a finite number"
    if type(v) is int:
        return None if abs(v) <= limit else "is out of range"
    return "must be a number"


def _int_problem(v: Any, bounds: tuple[int, int]) -> str | None:
    if type(v) is not int:
        return "must be an integer"
    return None if bounds[0] <= v <= bounds[1] else "is out of range"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "double": lambda v: _number_problem(v, 1.7e308),
    "float": lambda v: _number_problem(v, _FLOAT32_MAX),
    "long": lambda v: _int_problem(v, _INT64),
    "integer": lambda v: _int_problem(v, _INT32),
    "string": lambda v: None if type(v) is str else "must be a string",
    "boolean": lambda v: None if type(v) is bool else "must be true or false",
}


def _check_values(col: ColumnSpec, values: list[Any], first_row: int = 0) -> None:
    check = _CHECKS[col.type]
    for i, v in enumerate(values):
        if v is None:
            if col.required:
                raise RequestRejected(f"'{col.name}' is required and may not be null",
                                      field=col.name, row=first_row + i)
            continue
        problem = check(v)
        if problem is not None:
            raise RequestRejected(
                f"'{col.name}' {problem} ({col.type}); got {type(v).__name__} {_short(v)}",
                field=col.name, row=first_row + i,
            )


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_names(schema: InputSchema, names: Any, row: int | None) -> None:
    known = schema.names
    for name in names:
        if name not in known:
            raise RequestRejected(f"unknown column '{_short(name)}'; expected {list(known)}",
                                  field=str(name), row=row)
    for col in schema.columns:
        if col.name not in names and col.required:
            raise RequestRejected(f"missing column '{col.name}' ({col.type})",
                                  field=col.name, row=row)


def _from_records(schema: InputSchema, records: Any, max_rows: int) -> dict[str, list[Any]]:
    if not isinstance(records, list):
        raise RequestRejected("'records' must be a list of objects", field="records")
    _check_rows(len(records), max_rows, "records")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise RequestRejected(f"records[{i}] must be an object", field="records", row=i)
        _check_names(schema, rec, i)
    columns = {c.name: [rec.get(c.name) for rec in records] for c in schema.columns}
    for col in schema.columns:
        _check_values(col, columns[col.name])
    return columns


def _from_columns(schema: InputSchema, columns: Any, max_rows: int) -> dict[str, list[Any]]:
    if not isinstance(columns, dict):
        raise RequestRejected("'columns' must be an object of column -> list", field="columns")
    _check_names(schema, columns, None)
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise RequestRejected(f"column '{name}' must be a list", field=name)
        lengths.add(len(values))
    if len(lengths) > 1:
        raise RequestRejected(f"columns have different lengths {sorted(lengths)}",
                              field="columns")
    n = lengths.pop() if lengths else 0
    _check_rows(n, max_rows, "columns")
    out = {c.name: columns.get(c.name) or [None] * n for c in schema.columns}
    for col in schema.columns:
        _check_values(col, out[col.name])
    return out


def _check_rows(n: int, max_rows: int, field: str) -> None:
    if n == 0:
        raise RequestRejected("no rows to predict", field=field)
    if n > max_rows:
        raise RequestRejected(f"{n} rows is more than the limit of {max_rows} per request",
                              field=field)


def parse_payload(payload: Any, schema: InputSchema, max_rows: int) -> dict[str, list[Any]]:
    """Check a decoded JSON body and return its values column by column, in schema order."""
    if not isinstance(payload, dict):
        raise RequestRejected(
            'the body must be a JSON object {"records": [...]} or {"columns": {...}}'
        )
    keys = set(payload)
    if keys == {"records"}:
        return _from_records(schema, payload["records"], max_rows)
    if keys == {"columns"}:
        return _from_columns(schema, payload["columns"], max_rows)
    extra = sorted(str(k) for k in keys - {"records", "columns"})
    raise RequestRejected(
        'the body must have exactly one of "records" or "columns"'
        + (f"; unexpected key {_short(extra[0])}" if extra else ""),
        field=extra[0] if extra else None,
    )


_DTYPES = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32,
           "boolean": np.bool_, "string": object}


def _array(col: ColumnSpec, values: list[Any]) -> np.ndarray:
    dtype = _DTYPES[col.type]
    if dtype is not object and any(v is None for v in values):
        # as pandas does: a missing value turns an int/bool column into float with NaN
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(values, dtype=dtype)


def to_frame(schema: InputSchema, columns: dict[str, list[Any]]) -> pd.DataFrame:
    """A frame with the dtypes the model was trained on (what infer_signature saw)."""
    return pd.DataFrame({c.name: _array(c, columns[c.name]) for c in schema.columns}, copy=False)
