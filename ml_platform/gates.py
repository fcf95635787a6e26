"""Gates are data: a :class:`Verdict` carries the observed value, threshold, baseline, direction
and a human sentence. The same object feeds an asset check's metadata, the CLI and the
promotion decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_platform.config import Direction, GateMode, MetricThresholdSpec


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    message: str  # one sentence a person can act on
    observed: float | str | None = None
    threshold: float | str | None = None
    baseline: float | str | None = None
    direction: Direction | None = None
    mode: GateMode = GateMode.BLOCKING
    details: Mapping[str, Any] = field(default_factory=dict)  # tables, per-column values, paths

    @property
    def blocks(self) -> bool:
        """True when this verdict failed and its gate is blocking."""
        return not self.passed and self.mode is GateMode.BLOCKING

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["direction"] = self.direction.value if self.direction else None
        d["mode"] = self.mode.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        return cls(
            gate=d["gate"],
            passed=bool(d["passed"]),
            message=d["message"],
            observed=d.get("observed"),
            threshold=d.get("threshold"),
            baseline=d.get("baseline"),
            direction=Direction(d["direction"]) if d.get("direction") else None,
            mode=GateMode(d.get("mode", GateMode.BLOCKING)),
            details=dict(d.get("details") or {}),
        )

    def with_mode(self, mode: GateMode) -> Verdict:
        return Verdict(**{**self.__dict__, "mode": mode})


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class MetricThreshold:
    """A self-validating bound with a direction (cf. mlflow's MetricThreshold)."""

    metric: str
    threshold: float
    direction: Direction = Direction.HIGHER_IS_BETTER

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold for {self.metric} must be finite, got {self.threshold}")

    @classmethod
    def from_spec(cls, spec: MetricThresholdSpec) -> MetricThreshold:
        return cls(spec.metric, spec.threshold, spec.direction)

    def satisfied_by(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.direction is Direction.HIGHER_IS_BETTER:
            return value >= self.threshold
        return value <= self.threshold

    def evaluate(self, metrics: Mapping[str, float]) -> Verdict:
        op = ">=" if self.direction is Direction.HIGHER_IS_BETTER else "<="
        if self.metric not in metrics:
            return Verdict(
                gate="metric_thresholds",
                passed=False,
                message=f"metric '{self.metric}' was not computed; available: {sorted(metrics)}",
                threshold=self.threshold,
                direction=self.direction,
            )
        value = float(metrics[self.metric])
        ok = self.satisfied_by(value)
        verb = "meets" if ok else "fails"
        return Verdict(
            gate="metric_thresholds",
            passed=ok,
            message=f"{self.metric} = {_fmt(value)} {verb} the bound {op} {_fmt(self.threshold)}",
            observed=value,
            threshold=self.threshold,
            direction=self.direction,
        )


def combine(gate: str, parts: list[Verdict], mode: GateMode) -> Verdict:
    """One verdict for a gate made of several bounds (e.g. every metric threshold)."""
    failed = [p for p in parts if not p.passed]
    if not parts:
        return Verdict(gate=gate, passed=True, message="no bounds configured", mode=mode)
    if failed:
        msg = "; ".join(p.message for p in failed)
    else:
        msg = "all bounds met: " + "; ".join(p.message for p in parts)
    first = failed[0] if failed else parts[0]
    return Verdict(
        gate=gate,
        passed=not failed,
        message=msg,
        observed=first.observed,
        threshold=first.threshold,
        baseline=first.baseline,
        direction=first.direction,
        mode=mode,
        details={"bounds": [p.to_dict() for p in parts]},
    )
