"""Turn domain results (verdicts, reports, model refs) into Dagster metadata and check results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from ml_platform.config import Direction, GateMode
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


GateKind = Literal["data", "model", "promotion", "delivery"]


def report_severity(v: Verdict, kind: GateKind) -> dg.AssetCheckSeverity:
    """The one place that decides how a failed gate is reported to Dagster.

    - data gates (row_count, schema_valid, no_drift): a failed *blocking* gate is ERROR, so the
      run stops there: nothing trains on bad data.
    - model gates (candidate_model / evaluation checks): always WARN. Blocking ones are still
      declared ``blocking=True`` so the decision waits for them, but a failure must not stop the
      run: ``promotion_decision`` has to run and record the REJECT with its evidence. The
      check's metadata keeps ``mode=blocking`` and ``verdict=FAIL``; the decision reads those.
    - delivery (image, staging_smoke): like data gates, a failed blocking one is ERROR: a
      broken image or a failing staging server must not reach production.
    - promotion (``promotable``): ERROR unless PROMOTE. This is THE gate: it stops everything
      downstream in the run, and ``require_promotable`` carries it across runs.
    A failed warning-mode gate is WARN everywhere.
    """
    if kind == "model" or v.mode is not GateMode.BLOCKING:
        return dg.AssetCheckSeverity.WARN
    return dg.AssetCheckSeverity.ERROR


def check_result(
    v: Verdict,
    asset_key: dg.AssetKey | None = None,
    *,
    kind: GateKind = "data",
    extra: Mapping[str, Any] | None = None,
    links: Mapping[str, dg.MetadataValue] | None = None,
) -> dg.AssetCheckResult:
    """The check result of a gate: severity from :func:`report_severity`, the verdict's fields
    plus ``extra`` (e.g. the model version the verdict belongs to) and report ``links``."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=v.gate,
        passed=v.passed,
        severity=report_severity(v, kind),
        metadata=verdict_metadata(v) | plain(extra or {}) | dict(links or {}),
        description=v.message,
    )


def _number_or_text(value: Any) -> float | str | None:
    if value is None or value == "n/a":
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def verdict_from_check(check_name: str, passed: bool, metadata: Mapping[str, Any]) -> Verdict:
    """The inverse of :func:`verdict_metadata`: a recorded check evaluation as a Verdict (scalar
    details only; tables and reports stay in the check's metadata)."""
    raw = {k: getattr(m, "value", m) for k, m in metadata.items()}
    direction = raw.get("direction")
    details = {
        k.removeprefix("detail/"): v for k, v in raw.items()
        if k.startswith("detail/") and (isinstance(v, (int, float, str, bool)) and len(str(v)) < 500)
    }
    return Verdict(
        gate=check_name,
        passed=passed,
        message=str(raw.get("message", "")),
        observed=_number_or_text(raw.get("observed")),
        threshold=_number_or_text(raw.get("threshold")),
        baseline=_number_or_text(raw.get("baseline")),
        direction=Direction(direction) if direction and direction != "n/a" else None,
        mode=GateMode(raw.get("mode", GateMode.BLOCKING.value)),
        details=details,
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
