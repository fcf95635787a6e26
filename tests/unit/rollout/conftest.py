"""Test doubles for the rollout seams (deployer, metrics, clock) and a store that records saves.

Every double writes into one shared ``Log`` so tests can assert the order of effects across the
deployer and the store (e.g. stable at 100 % before the ROLLED_BACK state is persisted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml_platform.config import AnalysisSpec, RolloutSpec
from ml_platform.rollout import Message, Reconciler, RolloutState, RolloutStore, VariantMetrics

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STEP_SECONDS = 60.0


class Crash(Exception):
    """Stands for the process dying at an injected point."""


@dataclass
class Log:
    events: list[tuple[Any, ...]] = field(default_factory=list)
    crash_at: set[str] = field(default_factory=set)  # each point crashes once

    def hit(self, point: str, *details: Any) -> None:
        if point in self.crash_at:
            self.crash_at.discard(point)
            raise Crash(point)
        self.events.append((point, *details))

    def index(self, event: tuple[Any, ...]) -> int:
        return self.events.index(event)

    def named(self, point: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == point]


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = STEP_SECONDS) -> None:
        self.now += timedelta(seconds=seconds)


class FakeDeployer:
    """A router holding weights; promote and rollback are idempotent, as the Protocol asks."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.weights = (100, 0)
        self.promoted: str | None = None
        self.rolled_back = False

    def set_weights(self, stable: int, canary: int) -> None:
        self.log.hit("set_weights", stable, canary)
        self.weights = (stable, canary)

    def current_weights(self) -> tuple[int, int]:
        return self.weights

    def promote(self, candidate_version: str) -> None:
        self.log.hit("promote", candidate_version)
        self.promoted = candidate_version

    def rollback(self) -> None:
        self.log.hit("rollback")
        self.rolled_back = True


def healthy_stable(**changes: Any) -> VariantMetrics:
    return replace(VariantMetrics(2000, 10, 120.0, 0.40, 500, 0.81), **changes)


def healthy_canary(**changes: Any) -> VariantMetrics:
    return replace(VariantMetrics(300, 2, 130.0, 0.43, 80, 0.80), **changes)


class FakeMetrics:
    def __init__(self) -> None:
        self.stable = healthy_stable()
        self.canary = healthy_canary()
        self.reads = 0

    def variant_metrics(self) -> tuple[VariantMetrics, VariantMetrics]:
        self.reads += 1
        return self.stable, self.canary


class RecordingStore(RolloutStore):
    def __init__(self, root: Path, log: Log, clock: FakeClock) -> None:
        super().__init__(root, clock=clock)
        self.log = log

    def save(self, state: RolloutState) -> None:
        self.log.hit("save", state.phase, state.canary_weight)
        super().save(state)

    def clear_plan(self, project: str) -> None:
        self.log.hit("clear_plan")
        super().clear_plan(project)


def canary_spec(**changes: Any) -> RolloutSpec:
    base: dict[str, Any] = {
        "strategy": "canary",
        "steps": [10, 30, 100],
        "step_min_seconds": STEP_SECONDS,
        "analysis": AnalysisSpec(
            max_error_rate=0.02,
            max_p95_latency_ms=250.0,
            max_prediction_shift=0.1,
            min_requests=50,
            min_feedback=30,
        ),
    }
    return RolloutSpec(**{**base, **changes})


def blue_green_spec(**changes: Any) -> RolloutSpec:
    return canary_spec(strategy="blue_green", **changes)


@dataclass
class World:
    """One project's rollout wiring; ``restart()`` is a new process on the same files."""

    root: Path
    log: Log
    clock: FakeClock
    deployer: FakeDeployer
    metrics: FakeMetrics
    store: RecordingStore
    messages: list[Message] = field(default_factory=list)
    project: str = "churn"
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.reconciler = _reconciler(self)

    def start(self, spec: RolloutSpec, actor: str = "cli:alice") -> RolloutState:
        return self.store.start(self.project, "v2", "v1", spec, actor=actor)

    def reconcile(self, actor: str = "sensor") -> RolloutState:
        return self.reconciler.reconcile(self.project, actor)

    def restart(self) -> None:
        self.store = RecordingStore(self.root, self.log, self.clock)
        self.reconciler = _reconciler(self)


def _reconciler(w: World) -> Reconciler:
    def notifier(message: Message) -> None:
        w.log.hit("notify", type(message).__name__)
        w.messages.append(message)

    return Reconciler(w.deployer, w.metrics, w.store, clock=w.clock, notifier=notifier)


def make_world(root: Path) -> World:
    log, clock = Log(), FakeClock()
    store = RecordingStore(root, log, clock)
    return World(root, log, clock, FakeDeployer(log), FakeMetrics(), store)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path / "rollouts")
