"""The promotion decision's domain rules: matching recorded verdicts, missing ones, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.config import GATE_NAMES, GateMode, load_project
from ml_platform.errors import GateRefusal
from ml_platform.gates import Verdict
from ml_platform.model_gates import Decision, decide
from ml_platform.pipeline import Candidate
from ml_platform.promotion import DecisionRecord, GateRecord, exit_code, require_promotable, select_verdicts
from ml_platform.tracking import ModelRef
from tests.conftest import ROOT

CFG = load_project(ROOT / "projects" / "churn.yaml")


def _candidate(version: int = 2, commit: str = "c" * 64) -> Candidate:
    ref = ModelRef("churn", version, "run", f"models:/churn/{version}", "d", Path("."), 1, commit, "sha")
    return Candidate(ref, commit, "sha", 10, 5, 0.1)


def _passing_records(version: int, commit: str) -> dict[str, list[GateRecord]]:
    return {
        g: [GateRecord(Verdict(g, True, "ok", mode=CFG.gates.mode(g)), "r1", version, commit)]
        for g in GATE_NAMES
    }


def test_every_recorded_passing_verdict_of_this_version_promotes() -> None:
    cand = _candidate()
    verdicts, runs = select_verdicts(CFG, cand, _passing_records(2, cand.data_commit))
    assert decide(verdicts).decision is Decision.PROMOTE and set(runs.values()) == {"r1"}


def test_verdicts_of_another_version_or_commit_do_not_count() -> None:
    cand = _candidate(version=3, commit="e" * 64)
    records = _passing_records(2, "c" * 64)
    verdicts, _ = select_verdicts(CFG, cand, records)
    result = decide(verdicts)
    assert result.decision is Decision.REJECT  # nothing recorded for v3: unchecked is not good
    missing = next(v for v in verdicts if v.gate == "no_regression_vs_champion")
    assert (
        not missing.passed
        and "no recorded verdict" in missing.message
        and "model version 3" in missing.message
    )
    drift = next(v for v in verdicts if v.gate == "no_drift")
    assert "data commit eeeeeeeeeeee" in drift.message


def test_newest_matching_record_wins_and_mode_follows_config() -> None:
    cand = _candidate()
    records = _passing_records(2, cand.data_commit)
    failed = Verdict("fairness", False, "gap 0.4 > 0.2", mode=GateMode.BLOCKING)
    records["fairness"] = [GateRecord(failed, "r2", 2, cand.data_commit), *records["fairness"]]
    verdicts, runs = select_verdicts(CFG, cand, records)
    assert decide(verdicts).decision is Decision.HOLD  # fairness is a warning gate in the config
    assert runs["fairness"] == "r2"


def test_require_promotable_names_the_failed_gates() -> None:
    records = [
        DecisionRecord(
            "churn", 2, Decision.REJECT, ("no_regression_vs_champion", "metric_thresholds"), "2 failed"
        ),
        DecisionRecord("churn", 1, Decision.PROMOTE, (), "all passed"),
    ]
    assert require_promotable(records, "churn", 1).decision is Decision.PROMOTE
    with pytest.raises(GateRefusal, match="REJECT.*no_regression_vs_champion, metric_thresholds"):
        require_promotable(records, "churn", 2)
    with pytest.raises(GateRefusal, match="no promotion decision"):
        require_promotable(records, "credit", 1)


def test_exit_codes_for_ci_servers() -> None:
    assert exit_code(Decision.REJECT) == 1 and exit_code(Decision.PROMOTE) == 0
    assert exit_code(Decision.HOLD) == 0 and exit_code(Decision.HOLD, fail_on_hold=True) == 1
