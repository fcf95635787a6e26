"""Turn domain results (verdicts, reports, model refs) into Dagster metadata and check results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.config import GateMode
from ml_platform.gates import Verdict

_MAX_JSON_CHARS = 20_000
_MAX_TABLE_ROWS = 50


def _clean(value: Any) -> Any:
    """Metadata must be JSON: numpy scalars and NaN become plain values."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


def scalar(value: Any) -> dg.MetadataValue:
    value = _clean(value)
    if value is None:
        return dg.MetadataValue.text("n/a")
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return dg.MetadataValue.text(str(value))


def md_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_none_"
    cols = list(columns or rows[0].keys())
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "\n".join(
        "| " + " | ".join(str(_clean(r.get(c, ""))).replace("|", "\\|") for c in cols) + " |"
        for r in rows
    )
    return head + body


def json_value(obj: Any) -> dg.MetadataValue:
    text = json.dumps(obj, default=str)
    if len(text) > _MAX_JSON_CHARS:
        return dg.MetadataValue.text(text[:_MAX_JSON_CHARS] + " … (truncated; see the report file)")
    return dg.MetadataValue.json(json.loads(text))


def verdict_metadata(v: Verdict) -> dict[str, Any]:
    """The fields every gate shows: observed, threshold, baseline, direction, verdict, why."""
    meta: dict[str, Any] = {
        "verdict": dg.MetadataValue.text("PASS" if v.passed else "FAIL"),
        "mode": dg.MetadataValue.text(v.mode.value),
        "observed": scalar(v.observed),
        "threshold": scalar(v.threshold),
        "baseline": scalar(v.baseline),
        "direction": dg.MetadataValue.text(v.direction.value if v.direction else "n/a"),
        "message": dg.MetadataValue.text(v.message),
    }
    for key, value in v.details.items():
        meta[f"detail/{key}"] = _detail_value(value)
    return meta


def plain(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Domain summaries are plain dicts; markdown tables start with '|', paths are Path objects."""
    return {k: _detail_value(v) for k, v in meta.items()}


def _detail_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("|"):
        return dg.MetadataValue.md(value)
    if isinstance(value, Path):
        return dg.MetadataValue.path(str(value))
    if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
        return dg.MetadataValue.md(md_table(value[:_MAX_TABLE_ROWS]))
    if isinstance(value, Mapping) and value and all(isinstance(v, (int, float)) for v in value.values()):
        return dg.MetadataValue.md(md_table([{"name": k, "value": v} for k, v in value.items()]))
    if isinstance(value, (dict, list)):
        return json_value(value)
    return scalar(value)


def check_result(v: Verdict, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """A failed blocking gate is ERROR (stops downstream); a failed warning gate is WARN."""
    severity = dg.AssetCheckSeverity.ERROR if v.mode is GateMode.BLOCKING else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=v.gate,
        passed=v.passed,
        severity=severity,
        metadata=verdict_metadata(v),
        description=v.message,
    )


def report_links(paths: Mapping[str, Path], base_url: str = "", root: Path | None = None) -> dict[str, Any]:
    """Report files as path metadata, plus http links when a reports URL serves ``root``."""
    meta: dict[str, Any] = {}
    for kind, path in paths.items():
        meta[f"report/{kind}"] = dg.MetadataValue.path(str(path))
        if base_url and root is not None:
            rel = Path(path).resolve().relative_to(root.resolve())
            meta[f"report_url/{kind}"] = dg.MetadataValue.url(f"{base_url.rstrip('/')}/{rel.as_posix()}")
    return meta
