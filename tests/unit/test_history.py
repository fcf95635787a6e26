"""history(): rollout transitions from the store merged with MLflow version tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ml_platform.cd import Environment
from ml_platform.config import load_project
from ml_platform.history import history, render_history
from ml_platform.rollout import (
    Assessment,
    Phase,
    RolloutStore,
    VariantMetrics,
    assess,
    decide,
    record_approval,
)
from ml_platform.rollout.machine import abort
from ml_platform.settings import PlatformPaths
from tests.conftest import ROOT

T0 = datetime.now(UTC)  # the store stamps the start with the real clock


class FakeRegistry:
    def __init__(self) -> None:
        self.tags = {
            2: {"ml_platform.decision": "PROMOTE", "ml_platform.failed_gates": ""},
            3: {"ml_platform.decision": "HOLD", "ml_platform.failed_gates": "fairness,latency"},
        }

    def get_version_tags(self, name: str, version: int) -> dict[str, str]:
        assert name == "churn"
        return self.tags.get(version, {})


def _good() -> Assessment:
    m = VariantMetrics(requests=100, errors=0, p95_latency_ms=10, mean_score=0.3)
    return assess(m, m, load_project(ROOT / "projects" / "churn.yaml").rollout.analysis)


def test_history_lists_steps_approvals_and_rollbacks_with_metrics(tmp_path) -> None:
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    spec = cfg.rollout.model_copy(update={"approval": "before_full"})
    paths = PlatformPaths(tmp_path)
    clock = [T0]
    store = RolloutStore(Environment("churn", "production", paths).store.root,
                         clock=lambda: clock[0])

    def step(state, assessment=None, approved=False, actor="sensor"):  # type: ignore[no-untyped-def]
        clock[0] += timedelta(minutes=1)
        new, _ = decide(state, assessment, spec, clock[0], approved, actor=actor)
        store.save(new)
        return new

    # version 2: canary 10 -> 30 -> approval -> promoted
    s = store.start("churn", "2", "1", spec, actor="sensor")
    s = step(s)  # staged
    s = step(s)  # canary 10
    s = step(s, _good())  # 30
    s = step(s, _good())  # awaiting approval
    s = record_approval(s, now=clock[0] + timedelta(seconds=5), by="bob", reason="ticket 42")
    store.save(s)
    s = step(s, _good(), approved=True, actor="bob")
    assert s.phase is Phase.PROMOTED

    # version 3: staged, then aborted by a person
    clock[0] += timedelta(minutes=1)
    t = store.start("churn", "3", "2", spec, actor="sensor")
    t = step(t)
    clock[0] += timedelta(minutes=1)
    t, _ = abort(t, now=clock[0], actor="alice", reason="checkout errors")
    store.save(t)

    entries = history(cfg, paths, FakeRegistry())  # type: ignore[arg-type]
    events = [(e.candidate_version, e.event, e.canary_weight) for e in entries]
    assert events == [
        ("2", "started", 0), ("2", "staged", 0), ("2", "step", 10), ("2", "step", 30),
        ("2", "awaiting_approval", 30), ("2", "approval", 30), ("2", "promoted", 100),
        ("3", "started", 0), ("3", "staged", 0), ("3", "rolled_back", 0),
    ]
    promoted = next(e for e in entries if e.event == "promoted")
    assert promoted.actor == "bob" and promoted.live_version == "2"
    assert promoted.metrics["checks"]["error_rate"]["verdict"] == "pass"
    assert promoted.decision == "PROMOTE" and promoted.failed_gates == ()
    approval = next(e for e in entries if e.event == "approval")
    assert (approval.actor, approval.reason) == ("bob", "ticket 42")
    rolled = entries[-1]
    assert rolled.actor == "alice" and "checkout errors" in rolled.reason
    assert rolled.failed_gates == ("fairness", "latency") and rolled.live_version == "2"

    text = render_history(entries)
    assert "promoted" in text and "by bob" in text and "failed gates: fairness, latency" in text
    assert "error_rate=0 (pass, limit 0.02)" in text


def test_no_rollouts_renders_a_sentence(tmp_path) -> None:
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    assert history(cfg, PlatformPaths(tmp_path), FakeRegistry()) == []  # type: ignore[arg-type]
    assert render_history([]) == "no production rollouts recorded"
