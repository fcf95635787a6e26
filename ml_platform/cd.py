"""Continuous delivery of one project on the embedded default: staging, canary, promotion.

An :class:`Environment` ("staging" or "production") is a router process plus one model server
per variant, all on 127.0.0.1, remembered under ``<platform home>/deployments/<project>/<env>/``::

    token                  the router's admin token (0600; never logged, never in argv)
    router.json            the router's pid and port;  router-state.json  its variants + weights
    <project>/<variant>.json   the deployer's record of each model server (+ logs, input samples)
    rollouts/              the RolloutStore (production);  metrics-window.json  analysis window

Every function here is one call for the Dagster layer and is safe to repeat or to call after a
killed process: state is read back from those files, dead servers and routers are restarted
from it (a restarted router keeps its weights), and the rollout continues where it stopped.
One exception: a canary that dies while it serves users is not restarted; its failures are in
the router's counts, so the same reconcile rolls it back.

The Dagster layer calls :func:`deploy_staging` + :func:`staging_smoke` (staging_deployment),
:func:`start_rollout` (production_rollout), :func:`reconcile_rollout` (rollout_sensor), and
:func:`approve` / :func:`abort` (CLI or a UI-launched job).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
import pandas as pd

from ml_platform._cd_support import PersistedWindowMetrics, RouterProcess, probe_predict
from ml_platform._poll import Clock, Sleeper
from ml_platform.config import ProjectConfig
from ml_platform.deploy import Endpoint, LocalProcessDeployer, RouterTrafficController
from ml_platform.errors import DeploymentError, RolloutError
from ml_platform.gates import Verdict
from ml_platform.rollout import Notifier, Phase, Reconciler, RolloutState, RolloutStore
from ml_platform.rollout.machine import transition, weight_plan
from ml_platform.rollout.store import utc_now
from ml_platform.settings import PlatformPaths
from ml_platform.staging import deploy_staging, golden_scores, records, staging_smoke
from ml_platform.tracking import ModelRef, ModelRegistry

log = logging.getLogger(__name__)
EnvName = Literal["staging", "production"]
CHAMPION = "champion"
NO_STABLE = "none"  # stable_version of a first deployment: there was nothing to compare with
ROLLOUT_TAG = "ml_platform.rollout"  # on the candidate's model version: promoted / rolled_back
ROLLOUT_ID_TAG = "ml_platform.rollout_id"
ROLLOUT_REASON_TAG = "ml_platform.rollout_reason"


@dataclass(frozen=True)
class ServingEndpoint:
    """An environment's entry point (its router) and the model it serves."""

    project: str
    env: str
    url: str  # the router: what clients call
    model_version: str
    model_digest: str
    server: Endpoint  # the model server behind it


SAMPLE_RATE_ENV = "ML_PLATFORM_SERVING_SAMPLE_RATE"  # share of predictions logged for monitoring


def _sample_rate(given: float | None) -> float:
    if given is not None:
        return given
    raw = os.environ.get(SAMPLE_RATE_ENV, "").strip()
    try:
        rate = float(raw) if raw else 0.05
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise DeploymentError(f"{SAMPLE_RATE_ENV} must be a number between 0 and 1, got '{raw}'")
    return rate


class Environment:
    """A router and per-variant model servers of one project, found again from their records."""

    def __init__(self, project: str, name: EnvName, paths: PlatformPaths, *,
                 python: str = sys.executable, ready_timeout: float = 120.0,
                 sample_rate: float | None = None, clock: Clock = time.monotonic,
                 sleeper: Sleeper = time.sleep) -> None:
        if name not in ("staging", "production"):
            raise DeploymentError(f"environment must be 'staging' or 'production', got {name!r}")
        self.project, self.name = project, name
        self.dir = paths.deployments / project / name
        self.token_file = self.dir / "token"
        self.deployer = LocalProcessDeployer(self.dir, project=project, python=python,
                                             ready_timeout=ready_timeout,
                                             sample_rate=_sample_rate(sample_rate), clock=clock,
                                             sleeper=sleeper)
        self.router = RouterProcess(self.dir, self.token_file, python=python, clock=clock,
                                    sleeper=sleeper)
        self.store = RolloutStore(self.dir / "rollouts")
        self.window_file = self.dir / "metrics-window.json"

    def token(self) -> str:
        """The admin token, generated on first use into a file only the owner can read."""
        if not self.token_file.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return self.token()  # another controller made it first
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_urlsafe(32))
        return self.token_file.read_text(encoding="utf-8").strip()

    def router_url(self) -> str:
        rec = self.router.running()
        if rec is None:
            raise DeploymentError(f"the {self.name} router of {self.project} is not running; "
                                  "deploy or reconcile first")
        return rec.url

    def ensure_router(self, stable_url: str | None) -> str:
        if stable_url is None and not self.router.state_file.exists():
            raise DeploymentError(f"{self.project}/{self.name}: no router state and no stable "
                                  "server to start a router for")
        self.token()
        return self.router.ensure(stable_url or "http://127.0.0.1:1").url

    def ensure_server(self, variant: str, ref: ModelRef) -> Endpoint:
        """``ref`` served as ``variant``: the running server, or a (re)started one."""
        return self.deployer.deploy(variant, ref)

    def traffic(self) -> RouterTrafficController:
        return RouterTrafficController(self.router_url(), self.token(), deployer=self.deployer)

    def metrics(self, rollout_id: str) -> PersistedWindowMetrics:
        return PersistedWindowMetrics(self.router_url(), self.token(), self.window_file,
                                      rollout_id)

    def variants(self) -> dict[str, dict[str, Any]]:
        """The router's variants as it applies them now: ``{name: {"url", "weight"}}``."""
        state = self._admin("GET", "state")["variants"]
        return {n: {"url": v["url"], "weight": v["weight"]} for n, v in state.items()}

    def sync_router(self) -> None:
        """Re-point router variants at servers that were restarted on another port."""
        variants, changed = self.variants(), False
        for name, spec in variants.items():
            ep = self.deployer.endpoint(name)
            if ep is not None and ep.url.rstrip("/") != str(spec["url"]).rstrip("/"):
                spec["url"], changed = ep.url, True
        if changed:
            self._admin("PUT", "state", {"variants": variants})

    def teardown(self) -> None:
        """Stop every server and the router (their state files stay)."""
        for ep in self.deployer.endpoints():
            self.deployer.stop(ep.variant)
        self.router.stop()

    def _admin(self, method: str, what: str, body: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        url = f"{self.router_url()}/admin/{what}"
        try:
            reply = httpx.request(method, url, json=body, timeout=5.0,
                                  headers={"authorization": f"Bearer {self.token()}"})
        except httpx.HTTPError as e:
            raise DeploymentError(f"router admin {method} {url} failed: {type(e).__name__}") from e
        if reply.status_code != 200:
            raise DeploymentError(f"router admin {method} {url} answered {reply.status_code}: "
                                  f"{reply.text[:300]}")
        data: dict[str, Any] = reply.json()
        return data


def default_registry(paths: PlatformPaths) -> ModelRegistry:
    return ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)


# -- production rollouts ------------------------------------------------------------------------


class _Production:
    """The rollout controller of one project's production environment."""

    def __init__(self, cfg: ProjectConfig, paths: PlatformPaths, *,
                 registry: ModelRegistry | None, env: Environment | None,
                 now: Callable[[], datetime], notifier: Notifier | None) -> None:
        self.cfg, self.project = cfg, cfg.name
        self.env = env or Environment(cfg.name, "production", paths)
        self.store = self.env.store
        self.registry = registry or default_registry(paths)
        self.now, self.notifier = now, notifier

    def ref(self, version: str) -> ModelRef:
        return self.registry.get_version(self.project, int(version))

    # -- start ------------------------------------------------------------------------------

    def start(self, candidate: ModelRef, stable_ref: ModelRef | None, actor: str,
              smoke_rows: pd.DataFrame | None) -> RolloutState:
        with self.store.locked(self.project):
            latest = self.store.latest(self.project)
            if latest is not None and latest.candidate_version == str(candidate.version):
                return latest if latest.terminal else self.reconcile(actor)
            live = self.env.deployer.endpoint("stable")
            if stable_ref is None and live is not None:
                stable_ref = self.ref(live.model_version)
            if stable_ref is None:
                return self._first_deploy(candidate, actor, smoke_rows)
            if live is not None and live.model_version != str(stable_ref.version):
                raise RolloutError(
                    f"{self.project}: production serves version {live.model_version}, not the "
                    f"stable version {stable_ref.version} given; pass stable_ref=None to roll "
                    f"out against what is live")
            if stable_ref.version == candidate.version:
                raise RolloutError(f"{self.project}: version {candidate.version} is already live")
            state = self.store.start(self.project, str(candidate.version),
                                     str(stable_ref.version), self.cfg.rollout, actor=actor)
            self._restore(state)
            self.env.metrics(state.rollout_id).mark()
            return self.reconcile(actor)

    def _first_deploy(self, candidate: ModelRef, actor: str,
                      smoke_rows: pd.DataFrame | None) -> RolloutState:
        state = self.store.active(self.project) or self.store.start(
            self.project, str(candidate.version), NO_STABLE, self.cfg.rollout, actor=actor)
        server = self.env.ensure_server("stable", candidate)
        self.env.ensure_router(server.url)
        self.env.sync_router()
        verdict = self._first_smoke(candidate, smoke_rows)
        now = self.now()
        if verdict.passed:
            staged = transition(state, Phase.STAGED, at=now, actor=actor, reason=(
                f"first deployment of {self.project}: no stable version to compare against"))
            done = transition(staged, Phase.PROMOTED, at=now, actor=actor,
                              step_index=len(weight_plan(state.spec)) - 1,
                              metrics={"smoke": verdict.to_dict()},
                              reason=f"first deployment: smoke check passed ({verdict.message}); "
                                     f"version {candidate.version} serves 100 %")
        else:
            self.env.deployer.stop("stable")
            done = transition(state, Phase.ROLLED_BACK, at=now, actor=actor,
                              metrics={"smoke": verdict.to_dict()},
                              reason=f"first deployment failed its smoke check: {verdict.message}")
        self.store.save(done)
        self._post(done)
        return done

    def _first_smoke(self, ref: ModelRef, rows: pd.DataFrame | None) -> Verdict:
        if rows is None:
            import mlflow

            example = mlflow.models.Model.load(str(ref.artifact_path)).load_input_example(
                str(ref.artifact_path))
            if not isinstance(example, pd.DataFrame):
                raise DeploymentError(f"{ref.model_uri} has no input example to smoke-test with;"
                                      " pass smoke_rows")
            rows = example
        with httpx.Client(timeout=10.0) as client:
            probe = probe_predict(client, self.env.router_url(), records(rows))
        preds = probe.body.get("predictions")
        ok = probe.status == 200 and isinstance(preds, list) and len(preds) == len(rows)
        msg = (f"{len(rows)} row(s) predicted through the router in {probe.latency_ms:.0f} ms"
               if ok else f"predict answered {probe.status}: {str(probe.body)[:200]}")
        return Verdict(gate="first_deploy_smoke", passed=ok, message=msg,
                       observed=round(probe.latency_ms, 3), details={"rows": len(rows)})

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, actor: str) -> RolloutState:
        with self.store.locked(self.project):
            state = self._state()
            if state.stable_version == NO_STABLE and not state.terminal:
                return self._first_deploy(self.ref(state.candidate_version), actor, None)
            return self._drive(state, lambda r: r.reconcile(self.project, actor))

    def manual(self, verb: Literal["approve", "abort"], by: str, reason: str) -> RolloutState:
        with self.store.locked(self.project):
            state = self._state()
            if state.terminal:
                raise RolloutError(f"rollout {state.rollout_id} of {self.project} is already "
                                   f"{state.phase}; nothing to {verb}")
            if verb == "approve":
                return self._drive(state, lambda r: r.approve(self.project, by, reason))
            return self._drive(state, lambda r: r.abort(self.project, by, reason))

    def _state(self) -> RolloutState:
        state = self.store.active(self.project) or self.store.latest(self.project)
        if state is None:
            raise RolloutError(f"project {self.project} has no rollout in production; start one")
        return state

    def _drive(self, state: RolloutState, step: Callable[[Reconciler], RolloutState]
               ) -> RolloutState:
        self._restore(state)
        if state.terminal:
            self._post(state)
            return state
        metrics = self.env.metrics(state.rollout_id)
        if not metrics.marked:
            metrics.mark()
        reconciler = Reconciler(self.env.traffic(), metrics, self.store, clock=self.now,
                                notifier=self.notifier, logger=log)
        new = step(reconciler)
        if new.canary_weight != state.canary_weight and not new.terminal:
            metrics.mark()  # each step is judged on its own traffic
        self._post(new)
        return new

    def _restore(self, state: RolloutState) -> None:
        """Router and servers as ``state`` needs them; dead ones are restarted."""
        if self.store.pending_plan(self.project) is not None:
            # a decision was half applied (e.g. a promotion moved variants): let the reconciler
            # finish it with the router alone, then restore servers from the result
            stable = self.env.deployer.endpoint("stable")
            self.env.ensure_router(stable.url if stable else None)
            return
        if state.terminal:
            self._restore_final(state)
            return
        stable = self.env.ensure_server("stable", self.ref(state.stable_version))
        self.env.ensure_router(stable.url)
        self.env.sync_router()
        attached = self.env.variants().get("canary")
        if attached is not None and attached["weight"] > 0 and \
                not self.env.deployer.health("canary").ready:
            # a canary that died while serving users is evidence, not an outage to repair: its
            # failed requests are in the router's counts and the analysis rolls it back now,
            # instead of after a restart (seconds) that would also hide the failure
            log.warning("%s: the canary serving %s %% is down; leaving it to the analysis",
                        self.project, attached["weight"])
            return
        canary = self.env.ensure_server("canary", self.ref(state.candidate_version))
        self.env.sync_router()
        if attached is None:
            self.env.traffic().attach_canary(canary.url, weight=0)

    def _restore_final(self, state: RolloutState) -> None:
        if state.phase is Phase.ROLLED_BACK and state.stable_version == NO_STABLE:
            return  # a first deployment that failed: nothing serves
        version = state.candidate_version if state.phase is Phase.PROMOTED else state.stable_version
        stable = self.env.ensure_server("stable", self.ref(version))
        self.env.ensure_router(stable.url)
        self.env.deployer.stop("canary")
        self.env.sync_router()

    def _post(self, state: RolloutState) -> None:
        """Record a finished rollout in MLflow once: alias ``champion`` and the version's tags."""
        if not state.terminal:
            return
        version = int(state.candidate_version)
        tags = self.registry.get_version_tags(self.project, version)
        if tags.get(ROLLOUT_ID_TAG) == state.rollout_id:
            return
        if state.phase is Phase.PROMOTED:
            self.registry.set_alias(self.project, CHAMPION, version)
        self.registry.set_version_tags(self.project, version, {
            ROLLOUT_TAG: state.phase.value, ROLLOUT_REASON_TAG: state.history[-1].reason[:4000],
            ROLLOUT_ID_TAG: state.rollout_id,  # last: it marks the recording as done
        })


def start_rollout(cfg: ProjectConfig, candidate_ref: ModelRef, stable_ref: ModelRef | None,
                  paths: PlatformPaths, actor: str = "sensor", *,
                  registry: ModelRegistry | None = None, smoke_rows: pd.DataFrame | None = None,
                  env: Environment | None = None, now: Callable[[], datetime] = utc_now,
                  notifier: Notifier | None = None) -> RolloutState:
    """Start (or resume) the production rollout of ``candidate_ref``.

    ``stable_ref=None`` means "whatever production serves now"; when nothing serves yet this is
    a first deployment: the candidate gets 100 % after a smoke check (``smoke_rows``, default
    its MLflow input example) and the rollout is recorded as PROMOTED with that evidence.
    Calling it again for the same candidate returns (or resumes) the same rollout.
    """
    ctl = _Production(cfg, paths, registry=registry, env=env, now=now, notifier=notifier)
    return ctl.start(candidate_ref, stable_ref, actor, smoke_rows)


def reconcile_rollout(cfg: ProjectConfig, paths: PlatformPaths, actor: str = "sensor", *,
                      registry: ModelRegistry | None = None, env: Environment | None = None,
                      now: Callable[[], datetime] = utc_now,
                      notifier: Notifier | None = None) -> RolloutState:
    """One step of the live rollout (analyse, advance / hold / roll back); safe to repeat."""
    ctl = _Production(cfg, paths, registry=registry, env=env, now=now, notifier=notifier)
    return ctl.reconcile(actor)


def approve(cfg: ProjectConfig, paths: PlatformPaths, by: str, reason: str, *,
            registry: ModelRegistry | None = None, env: Environment | None = None,
            now: Callable[[], datetime] = utc_now,
            notifier: Notifier | None = None) -> RolloutState:
    """Approve a rollout in AWAITING_APPROVAL and reconcile it."""
    ctl = _Production(cfg, paths, registry=registry, env=env, now=now, notifier=notifier)
    return ctl.manual("approve", by, reason)


def abort(cfg: ProjectConfig, paths: PlatformPaths, by: str, reason: str, *,
          registry: ModelRegistry | None = None, env: Environment | None = None,
          now: Callable[[], datetime] = utc_now,
          notifier: Notifier | None = None) -> RolloutState:
    """Roll the live rollout back now: stable to 100 % first, then the candidate is stopped."""
    ctl = _Production(cfg, paths, registry=registry, env=env, now=now, notifier=notifier)
    return ctl.manual("abort", by, reason)


@dataclass(frozen=True)
class RolloutStatus:
    state: RolloutState | None
    router_url: str | None
    weights: dict[str, int]
    servers: dict[str, str]  # variant -> "v<version> at <url>: <health detail>"


def rollout_status(cfg: ProjectConfig, paths: PlatformPaths, *,
                   env: Environment | None = None) -> RolloutStatus:
    """What production looks like now (read-only: starts and changes nothing)."""
    env = env or Environment(cfg.name, "production", paths)
    state = env.store.active(cfg.name) or env.store.latest(cfg.name)
    rec = env.router.running()
    weights = {n: int(v["weight"]) for n, v in env.variants().items()} if rec else {}
    servers = {}
    for ep in env.deployer.endpoints():
        health = env.deployer.health(ep.variant)
        servers[ep.variant] = f"v{ep.model_version} at {ep.url}: {health.detail}"
    return RolloutStatus(state, rec.url if rec else None, weights, servers)


def render_status(status: RolloutStatus) -> str:
    lines = [f"router: {status.router_url or 'not running'}  weights: {status.weights or '-'}"]
    lines += [f"  {variant}: {detail}" for variant, detail in sorted(status.servers.items())]
    s = status.state
    if s is None:
        return "\n".join([*lines, "no rollout yet"])
    lines.append(f"rollout {s.rollout_id}: {s.phase} candidate v{s.candidate_version} at "
                 f"{s.canary_weight} % (stable v{s.stable_version})")
    last = s.history[-1]
    lines.append(f"  last: {last.at:%Y-%m-%d %H:%M:%S} {last.actor}: {last.reason}")
    if s.approval:
        lines.append(f"  approved by {s.approval.by}: {s.approval.reason}")
    return "\n".join(lines)


__all__ = [
    "CHAMPION", "NO_STABLE", "Environment", "RolloutStatus", "ServingEndpoint", "abort",
    "approve", "deploy_staging", "golden_scores", "reconcile_rollout", "render_status",
    "rollout_status", "staging_smoke", "start_rollout",
]
