from __future__ import annotations

import xml.etree.ElementTree as ET

from ml_platform.config import Direction, GateMode
from ml_platform.gates import Verdict
from ml_platform.model_gates import Decision, decide, render_gate_tree, to_junit_xml


def _v(gate: str, passed: bool, mode: GateMode = GateMode.BLOCKING) -> Verdict:
    return Verdict(
        gate=gate,
        passed=passed,
        mode=mode,
        message=f"{gate} says <{passed}> & more",
        observed=0.71,
        threshold=0.8,
        baseline=0.83,
        direction=Direction.HIGHER_IS_BETTER,
    )


def test_all_passed_promotes():
    result = decide([_v("smoke_train", True), _v("fairness", True, GateMode.WARNING)])
    assert result.decision is Decision.PROMOTE and result.failed == ()


def test_only_warning_failures_hold():
    result = decide([_v("smoke_train", True), _v("fairness", False, GateMode.WARNING)])
    assert result.decision is Decision.HOLD
    assert result.failed_warning == ("fairness",) and "fairness" in result.reason


def test_a_blocking_failure_rejects_and_names_every_failed_gate():
    verdicts = [
        _v("no_regression_vs_champion", False),
        _v("latency_budget", False, GateMode.WARNING),
        _v("metric_thresholds", False),
        _v("metric_thresholds", False),  # several bounds of one gate: named once
    ]
    result = decide(verdicts)
    assert result.decision is Decision.REJECT
    assert result.failed_blocking == ("no_regression_vs_champion", "metric_thresholds")
    assert result.failed_warning == ("latency_budget",)
    assert "\n" not in result.reason and "no_regression_vs_champion" in result.reason


def test_off_gates_are_ignored_and_no_evidence_is_not_a_promotion():
    assert decide([_v("fairness", False, GateMode.OFF)]).decision is Decision.HOLD
    assert decide([]).decision is Decision.HOLD
    assert decide([_v("a", True), _v("b", False, GateMode.OFF)]).decision is Decision.PROMOTE


def test_gate_tree_shows_each_gate_with_status_and_numbers():
    verdicts = [_v("smoke_train", True), _v("no_regression_vs_champion", False)]
    tree = render_gate_tree(decide(verdicts), verdicts)
    lines = tree.splitlines()
    assert lines[0].startswith("REJECT: 1 blocking gate(s) failed")
    assert lines[1].startswith("├── [PASS] smoke_train (blocking)")
    assert lines[3].startswith("└── [FAIL] no_regression_vs_champion (blocking)")
    assert "observed 0.71, threshold 0.8, baseline 0.83" in lines[3]


def test_junit_xml_parses_back_with_the_right_failure_count():
    verdicts = [
        _v("smoke_train", True),
        _v("no_regression_vs_champion", False),
        _v("fairness", False, GateMode.WARNING),
        _v("explainability", True, GateMode.OFF),
    ]
    xml = to_junit_xml("credit_default", "v7", verdicts, decide(verdicts))
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [v.gate for v in verdicts]
    failures = [c for c in cases if c.find("failure") is not None]
    assert suite.get("failures") == "2" and len(failures) == 2
    assert (
        failures[0].find("failure").get("message")
        == "no_regression_vs_champion says <False> & more"
    )
    assert failures[1].find("failure").get("type") == "warning"
    assert cases[3].find("skipped") is not None and suite.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["decision"] == "REJECT" and props["version"] == "v7"
