"""Artifact gates: size, save/load round trip, pinned dependencies, and a content digest."""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ml_platform.config import ArtifactSpec, Direction, GateMode
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import fmt
from ml_platform.model_gates.reproducibility import max_abs_difference
from ml_platform.serving.digest import directory_digest  # noqa: F401 (re-export)

MB = 1_000_000  # SI megabytes, as docker and most registries display sizes
_EDITABLE = ("-e ", "--editable")


def artifact_size(size_bytes: int, spec: ArtifactSpec, mode: GateMode) -> Verdict:
    """Fail when the serialized model is larger than ``spec.max_size_mb``."""
    size_mb = size_bytes / MB
    ok = size_mb <= spec.max_size_mb
    return Verdict(
        gate="artifact_size",
        passed=ok,
        observed=size_mb,
        threshold=spec.max_size_mb,
        direction=Direction.LOWER_IS_BETTER,
        mode=mode,
        details={"size_bytes": size_bytes},
        message=f"model artifact is {fmt(size_mb)} MB, "
        f"{'within' if ok else 'over'} the limit of {fmt(spec.max_size_mb)} MB",
    )


def round_trip(
    predict_original: Callable[[pd.DataFrame], np.ndarray],
    predict_reloaded: Callable[[pd.DataFrame], np.ndarray],
    X_sample: pd.DataFrame,
    mode: GateMode,
) -> Verdict:
    """Pass only when the reloaded model predicts exactly what the in-memory model predicted."""
    before = np.asarray(predict_original(X_sample), dtype=np.float64)
    after = np.asarray(predict_reloaded(X_sample), dtype=np.float64)
    same_shape = before.shape == after.shape
    gap = max_abs_difference(before, after) if same_shape else float("inf")
    ok = gap == 0.0
    return Verdict(
        gate="round_trip",
        passed=ok,
        observed=gap,
        threshold=0.0,
        baseline=0.0,
        direction=Direction.LOWER_IS_BETTER,
        mode=mode,
        details={"rows": len(X_sample), "shapes": [list(before.shape), list(after.shape)]},
        message=(
            f"saved and reloaded model predicts identically on {len(X_sample)} rows"
            if ok
            else f"reloaded model differs from the original: max |difference| = {fmt(gap)} "
            f"on {len(X_sample)} rows (shapes {before.shape} vs {after.shape})"
        ),
    )


def _logical_lines(lines: list[str]) -> list[str]:
    """Join backslash continuations, drop comments, blanks and pip options (--hash, -i)."""
    joined: list[str] = []
    buffer = ""
    for raw in lines:
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        line, buffer = (buffer + line).strip(), ""
        if line:
            joined.append(" ".join(t for t in line.split() if not t.startswith("--hash")))
    # options (-r, -c, -i, --index-url...) are not requirements; editable installs are, unpinned
    return [x for x in joined if not x.startswith("-") or x.startswith(_EDITABLE)]


def _pin(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        return None
    return specs[0].version


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)  # 1.0 == 1.0.0
    except InvalidVersion:
        return a == b


def _audit(line: str) -> dict[str, Any]:
    if line.startswith(_EDITABLE):
        return {"requirement": line, "problem": "unpinned", "detail": "editable install"}
    try:
        req = Requirement(line)
    except InvalidRequirement as e:
        return {"requirement": line, "problem": "unparseable", "detail": str(e)}
    pinned = _pin(req)
    if pinned is None:
        return {"requirement": line, "problem": "unpinned", "detail": "expected name==version"}
    installed = _installed(req.name)
    applies = req.marker is None or req.marker.evaluate()
    if applies and installed is not None and not _same_version(pinned, installed):
        return {
            "requirement": canonicalize_name(req.name),
            "problem": "mismatch",
            "detail": f"pinned {pinned}, installed here {installed}",
        }
    return {"requirement": canonicalize_name(req.name), "problem": None, "installed": installed}


def dependencies_pinned(requirements_lines: list[str], mode: GateMode) -> Verdict:
    """Every requirement is ``name==version`` and matches the version installed here, if any."""
    audits = [_audit(line) for line in _logical_lines(requirements_lines)]
    unpinned = [a["requirement"] for a in audits if a["problem"] in ("unpinned", "unparseable")]
    mismatched = [
        f"{a['requirement']} ({a['detail']})" for a in audits if a["problem"] == "mismatch"
    ]
    problems = len(unpinned) + len(mismatched)
    parts = ([f"unpinned: {unpinned}"] if unpinned else []) + (
        [f"version differs from the environment: {mismatched}"] if mismatched else []
    )
    return Verdict(
        gate="dependencies_pinned",
        passed=problems == 0,
        observed=float(problems),
        threshold=0.0,
        direction=Direction.LOWER_IS_BETTER,
        mode=mode,
        details={
            "requirements": len(audits),
            "unpinned": unpinned,
            "mismatched": mismatched,
            "not_installed_here": [
                a["requirement"] for a in audits if a["problem"] is None and a["installed"] is None
            ],
        },
        message=(
            f"all {len(audits)} requirements pinned and consistent with this environment"
            if problems == 0
            else f"{problems} of {len(audits)} requirements not reproducible: " + "; ".join(parts)
        ),
    )

