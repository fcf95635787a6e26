"""The promotion decision from gate verdicts, and its two renderings (text tree, JUnit XML)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import StrEnum

from ml_platform.config import GateMode
from ml_platform.gates import Verdict
from ml_platform.model_gates._common import fmt


class Decision(StrEnum):
    PROMOTE = "PROMOTE"  # every gate passed
    HOLD = "HOLD"  # only warning gates failed: a person decides
    REJECT = "REJECT"  # a blocking gate failed


@dataclass(frozen=True)
class DecisionResult:
    decision: Decision
    reason: str  # one line
    failed_blocking: tuple[str, ...] = ()
    failed_warning: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[str, ...]:
        return self.failed_blocking + self.failed_warning


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def decide(verdicts: list[Verdict]) -> DecisionResult:
    """REJECT on a failed blocking gate, HOLD on failed warning gates only, else PROMOTE.

    No verdicts at all is HOLD, not PROMOTE: a candidate nobody checked is not a good candidate.
    """
    active = [v for v in verdicts if v.mode is not GateMode.OFF]
    blocking = _unique([v.gate for v in active if v.blocks])
    warning = _unique([v.gate for v in active if not v.passed and v.mode is GateMode.WARNING])
    if blocking:
        reason = f"{len(blocking)} blocking gate(s) failed: {', '.join(blocking)}"
        return DecisionResult(Decision.REJECT, reason, blocking, warning)
    if warning:
        reason = f"only warning gate(s) failed: {', '.join(warning)}; needs a person's review"
        return DecisionResult(Decision.HOLD, reason, (), warning)
    if not active:
        return DecisionResult(Decision.HOLD, "no gate verdicts: nothing to judge the candidate on")
    return DecisionResult(Decision.PROMOTE, f"all {len(active)} gate verdict(s) passed")


def _numbers(v: Verdict) -> str:
    parts = []
    for label, value in (
        ("observed", v.observed),
        ("threshold", v.threshold),
        ("baseline", v.baseline),
    ):
        if value is not None:
            parts.append(f"{label} {fmt(value) if isinstance(value, float) else value}")
    return ", ".join(parts)


def render_gate_tree(decision: DecisionResult, verdicts: list[Verdict]) -> str:
    """Plain-text tree: the decision, then one branch per gate with its status and numbers."""
    lines = [f"{decision.decision.value}: {decision.reason}"]
    for i, v in enumerate(verdicts):
        last = i == len(verdicts) - 1
        status = "OFF " if v.mode is GateMode.OFF else ("PASS" if v.passed else "FAIL")
        numbers = _numbers(v)
        lines.append(
            f"{'└──' if last else '├──'} [{status}] {v.gate} ({v.mode.value})"
            + (f"  {numbers}" if numbers else "")
        )
        lines.append(f"{'   ' if last else '│  '}     {v.message}")
    return "\n".join(lines)


def _testcase(suite: ET.Element, classname: str, v: Verdict) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=v.gate, time="0")
    if v.mode is GateMode.OFF:
        ET.SubElement(case, "skipped", message="gate is off")
    elif not v.passed:
        failure = ET.SubElement(case, "failure", message=v.message, type=v.mode.value)
        failure.text = _numbers(v)
    ET.SubElement(case, "system-out").text = json.dumps(v.to_dict(), default=str)


def to_junit_xml(
    project: str, version: str, verdicts: list[Verdict], decision: DecisionResult
) -> str:
    """One testcase per gate, a failure element for each failed one (CI test report widgets)."""
    failures = sum(1 for v in verdicts if not v.passed and v.mode is not GateMode.OFF)
    skipped = sum(1 for v in verdicts if v.mode is GateMode.OFF)
    suite = ET.Element(
        "testsuite",
        name=f"{project} gates",
        tests=str(len(verdicts)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("project", project),
        ("version", version),
        ("decision", decision.decision.value),
        ("reason", decision.reason),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for v in verdicts:
        _testcase(suite, f"{project}.{version}", v)
    root = ET.Element("testsuites", name=project, tests=str(len(verdicts)), failures=str(failures))
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
