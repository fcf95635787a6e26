"""Applying decisions: the one side-effecting step of a rollout, safe to repeat.

``reconcile`` loads the project's rollout, reads metrics when the phase needs them, assesses,
decides, applies the intents to the deployer and persists the new state, all under the
project's lock. To survive a crash between acting and persisting, a state-changing decision
is first written down as a :class:`~ml_platform.rollout.store.Plan`; the next call (from any
process) finds the plan and finishes it instead of deciding afresh, so it reaches the same
outcome even if the metrics moved in the meantime. Order inside a plan: deployer intents (for a
rollback, stable to 100 % first), then the state, then messages, then the plan is cleared.
Messages are therefore delivered at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ml_platform.errors import RolloutError
from ml_platform.rollout import machine
from ml_platform.rollout.analysis import assess
from ml_platform.rollout.machine import Decision
from ml_platform.rollout.model import (
    Assessment,
    Intent,
    Message,
    Notify,
    PromoteCandidate,
    RequestApproval,
    RollbackToStable,
    RolloutState,
    SetWeights,
    VariantMetrics,
)
from ml_platform.rollout.store import Plan, RolloutStore, utc_now


class TrafficController(Protocol):
    """The deployer/router seam. ``promote`` and ``rollback`` must be idempotent: after a crash
    the reconciler repeats the last plan, so either may be called twice with the same argument.
    Failures should raise :class:`~ml_platform.errors.DeploymentError`."""

    def set_weights(self, stable: int, canary: int) -> None: ...

    def current_weights(self) -> tuple[int, int]:
        """(stable, canary) percentages the router applies now."""
        ...

    def promote(self, candidate_version: str) -> None:
        """Make the candidate the new stable variant (it already serves 100 %)."""
        ...

    def rollback(self) -> None:
        """Retire the candidate (stable already serves 100 %)."""
        ...


class MetricsSource(Protocol):
    """Per-variant serving metrics over the source's window (e.g. the last few minutes).

    During a blue/green preview the candidate serves no users; its metrics are those of the
    smoke traffic sent to it directly."""

    def variant_metrics(self) -> tuple[VariantMetrics, VariantMetrics]:
        """(stable, canary)."""
        ...


Notifier = Callable[[Message], None]


class _ManualMove(Protocol):
    def __call__(
        self, state: RolloutState, *, now: datetime, actor: str, reason: str
    ) -> Decision: ...


class Reconciler:
    def __init__(
        self,
        deployer: TrafficController,
        metrics: MetricsSource,
        store: RolloutStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        notifier: Notifier | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._deployer = deployer
        self._metrics = metrics
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._log = logger or logging.getLogger(__name__)

    def reconcile(self, project: str, actor: str = "sensor") -> RolloutState:
        """One step of the project's rollout; repeating it is safe."""
        with self._store.locked(project):
            finished = self._finish_pending_plan(project)
            if finished is not None:
                return finished
            state = self._current(project)
            assessment = self._assess(state)
            approved = state.approval is not None
            decision = machine.decide(
                state, assessment, state.spec, self._clock(), approved, actor=actor
            )
            return self._commit(state, decision)

    def approve(self, project: str, by: str, reason: str) -> RolloutState:
        """Approve a rollout waiting in AWAITING_APPROVAL, then reconcile it."""
        with self._store.locked(project):
            state = self._settled_active(project)
            approved = machine.record_approval(state, now=self._clock(), by=by, reason=reason)
            self._store.save(approved)  # kept even if the reconcile below fails
            self._log.info("rollout %s approved by %s: %s", state.rollout_id, by, reason)
            return self.reconcile(project, actor=by)

    def abort(self, project: str, by: str, reason: str) -> RolloutState:
        """Roll the live rollout back now: stable to 100 % first, whatever the metrics say."""
        return self._manual(project, by, reason, "abort", machine.abort)

    def pause(self, project: str, by: str, reason: str) -> RolloutState:
        return self._manual(project, by, reason, "pause", machine.pause)

    def resume(self, project: str, by: str, reason: str) -> RolloutState:
        return self._manual(project, by, reason, "resume", machine.resume)

    def _manual(
        self, project: str, by: str, reason: str, verb: str, move: _ManualMove
    ) -> RolloutState:
        if not by.strip() or not reason.strip():
            raise RolloutError(f"{verb} needs who does it (by) and why (reason)")
        with self._store.locked(project):
            state = self._settled_active(project)
            decision = move(state, now=self._clock(), actor=by, reason=reason)
            return self._commit(state, decision)

    def _settled_active(self, project: str) -> RolloutState:
        self._finish_pending_plan(project)
        state = self._store.active(project)
        if state is None:
            raise RolloutError(f"project {project} has no live rollout")
        return state

    def _current(self, project: str) -> RolloutState:
        # A finished rollout is returned as it is, so the sensor can keep reconciling safely.
        state = self._store.active(project) or self._store.latest(project)
        if state is None:
            raise RolloutError(f"project {project} has no rollout; start one first")
        return state

    def _assess(self, state: RolloutState) -> Assessment | None:
        if not machine.needs_analysis(state):
            return None
        stable, canary = self._metrics.variant_metrics()
        return assess(stable, canary, state.spec.analysis)

    def _commit(self, old: RolloutState, decision: Decision) -> RolloutState:
        new, intents = decision
        if new == old:
            self._apply_to_deployer(intents)  # re-asserts weights; nothing to record
            return old
        plan = Plan(state=new, intents=intents)
        self._store.write_plan(plan)
        return self._execute(plan)

    def _finish_pending_plan(self, project: str) -> RolloutState | None:
        plan = self._store.pending_plan(project)
        if plan is None:
            return None
        self._log.warning(
            "rollout %s: finishing a decision interrupted before it was recorded (-> %s)",
            plan.state.rollout_id,
            plan.state.phase,
        )
        return self._execute(plan)

    def _execute(self, plan: Plan) -> RolloutState:
        self._apply_to_deployer(plan.intents)
        self._store.save(plan.state)
        self._send(plan.intents)
        self._store.clear_plan(plan.state.project)
        last = plan.state.history[-1]
        self._log.info(
            "rollout %s: %s -> %s by %s: %s",
            plan.state.rollout_id,
            last.from_phase,
            last.to_phase,
            last.actor,
            last.reason,
        )
        return plan.state

    def _apply_to_deployer(self, intents: tuple[Intent, ...]) -> None:
        for intent in intents:
            if isinstance(intent, SetWeights):
                wanted = (intent.stable, intent.canary)
                if tuple(self._deployer.current_weights()) != wanted:
                    self._deployer.set_weights(intent.stable, intent.canary)
            elif isinstance(intent, PromoteCandidate):
                self._deployer.promote(intent.candidate_version)
            elif isinstance(intent, RollbackToStable):
                self._deployer.rollback()

    def _send(self, intents: tuple[Intent, ...]) -> None:
        for intent in intents:
            if isinstance(intent, Notify | RequestApproval) and self._notifier is not None:
                self._notifier(intent)
