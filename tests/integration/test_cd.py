"""The rollout controller for real: a router and model servers as processes on loopback ports,
MLflow in a temporary platform home, traffic replayed through the router."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ml_platform import cd, training
from ml_platform.config import AnalysisSpec, ProjectConfig, RolloutSpec, load_project
from ml_platform.rollout import Phase, RolloutState
from ml_platform.settings import PlatformPaths, platform_paths
from ml_platform.tracking import ModelRef, ModelRegistry
from ml_platform.traffic import ReplayStats, replay
from tests.conftest import ROOT
from tests.integration.test_mlflow_registry import CODE_SHA, DATA_COMMIT, churn_like_frame

pytestmark = pytest.mark.integration
ANALYSIS = AnalysisSpec(min_requests=15, max_p95_latency_ms=2000.0, max_error_rate=0.02,
                        max_prediction_shift=0.15)


@dataclass(frozen=True)
class Models:
    registry: ModelRegistry
    cfg: ProjectConfig
    good1: ModelRef
    good2: ModelRef
    shifted: ModelRef  # trained on labels that are almost all positive: scores shift hard
    rows: pd.DataFrame
    labels: pd.Series


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    paths = platform_paths(tmp_path_factory.mktemp("cd") / "home").ensure()
    registry = ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": {"max_iter": 20}})})
    frame = churn_like_frame(400, seed=1)
    train_df, holdout = training.split_holdout(frame, cfg)
    skewed = train_df.copy()
    skewed[cfg.target] = (skewed.index % 20 != 0).astype(int)  # 95 % positive

    def register(df: pd.DataFrame, seed: int) -> ModelRef:
        trained = training.train(df, cfg, seed=seed, holdout_rows=len(holdout))
        return registry.log_candidate(cfg, trained, {"roc_auc": 0.8}, params={}, tags={},
                                      input_example=df.head(5), data_commit=DATA_COMMIT,
                                      code_sha=CODE_SHA)

    features = cfg.training_features
    return Models(registry, cfg, register(train_df, 1), register(train_df, 2),
                  register(skewed, 3), holdout[features].reset_index(drop=True),
                  holdout[cfg.target].reset_index(drop=True))


def _cfg(models: Models, **rollout: object) -> ProjectConfig:
    spec = RolloutSpec(**{"analysis": ANALYSIS, **rollout})  # type: ignore[arg-type]
    return models.cfg.model_copy(update={"rollout": spec})


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[PlatformPaths]:
    p = PlatformPaths(tmp_path / "deploy-home")
    yield p
    for env in ("staging", "production"):
        cd.Environment("churn", env, p).teardown()  # type: ignore[arg-type]


def _send(env: cd.Environment, models: Models, n: int = 150, url: str | None = None
          ) -> ReplayStats:
    return replay(url or env.router_url(), models.rows, models.labels, rate_per_s=1000,
                  max_requests=n, max_seconds=20, concurrency=4)


def _drive(cfg: ProjectConfig, paths: PlatformPaths, models: Models, *,
           until: set[Phase] | None = None, done: Callable[[RolloutState], bool] | None = None,
           rounds: int = 12) -> tuple[RolloutState, list[ReplayStats]]:
    """Traffic, then reconcile, until the rollout reaches one of ``until`` (or ``done``)."""
    reached = done or (lambda s: s.phase in (until or set()))
    env, sent = cd.Environment("churn", "production", paths), []
    state = cd.reconcile_rollout(cfg, paths, registry=models.registry)
    for _ in range(rounds):
        if reached(state):
            return state, sent
        sent.append(_send(env, models))
        state = cd.reconcile_rollout(cfg, paths, registry=models.registry)
    raise AssertionError(f"rollout stuck in {state.phase}: {state.history[-1].reason}")


def _weights(env: cd.Environment) -> dict[str, int]:
    return {n: v["weight"] for n, v in env.variants().items()}


def test_staging_deploy_and_smoke(models: Models, paths: PlatformPaths) -> None:
    endpoint = cd.deploy_staging(models.cfg, models.good1, paths)
    golden = models.rows.head(20)
    expected = cd.golden_scores(models.registry, models.good1, golden)
    verdict = cd.staging_smoke(endpoint, golden, expected, latency_budget_ms=2000, requests=20)
    assert verdict.passed, verdict.message
    assert verdict.details["golden_max_abs_diff"] == 0.0

    wrong = cd.golden_scores(models.registry, models.shifted, golden)
    failed = cd.staging_smoke(endpoint, golden, wrong, latency_budget_ms=2000, requests=5)
    assert not failed.passed and "differ from in-process" in failed.message

    again = cd.deploy_staging(models.cfg, models.good2, paths)  # replaces the staged model
    assert again.url == endpoint.url and again.server.url != endpoint.server.url
    assert cd.staging_smoke(again, golden, cd.golden_scores(models.registry, models.good2, golden),
                            latency_budget_ms=2000, requests=5).passed


def test_canary_promoted_through_every_step_surviving_restarts(models: Models,
                                                               paths: PlatformPaths) -> None:
    cfg = _cfg(models)
    first = cd.start_rollout(cfg, models.good1, None, paths, registry=models.registry)
    assert first.phase is Phase.PROMOTED and first.stable_version == cd.NO_STABLE
    assert "first deployment" in first.history[-1].reason
    assert models.registry.get_alias("churn", cd.CHAMPION).version == models.good1.version
    env = cd.Environment("churn", "production", paths)
    old_stable = env.deployer.endpoint("stable")

    state = cd.start_rollout(cfg, models.good2, None, paths, registry=models.registry)
    assert state.phase is Phase.STAGED and state.stable_version == str(models.good1.version)
    assert cd.start_rollout(cfg, models.good2, None, paths,
                            registry=models.registry).rollout_id == state.rollout_id
    state, _ = _drive(cfg, paths, models, done=lambda s: s.canary_weight == 10)
    assert _weights(env) == {"stable": 90, "canary": 10}
    state, _ = _drive(cfg, paths, models, done=lambda s: s.canary_weight == 30)
    assert state.phase is Phase.CANARY

    # mid-rollout the router dies and so does the controller (a new Environment object):
    # the next reconcile restarts the router on its port with the weights it had
    before = _weights(env)
    router = env.router.record()
    assert router is not None
    os.killpg(router.pid, signal.SIGKILL)
    fresh = cd.Environment("churn", "production", paths)
    state = cd.reconcile_rollout(cfg, paths, registry=models.registry, env=fresh)
    restarted = fresh.router.record()
    assert restarted is not None and restarted.pid != router.pid
    assert restarted.url == router.url and _weights(fresh) == before
    state, _ = _drive(cfg, paths, models, done=lambda s: s.phase is Phase.PROMOTED)
    weights = [t.canary_weight for t in state.history]
    assert [w for w in (10, 30, 100) if w in weights] == [10, 30, 100], weights
    assert models.registry.get_alias("churn", cd.CHAMPION).version == models.good2.version
    tags = models.registry.get_version_tags("churn", models.good2.version)
    assert tags[cd.ROLLOUT_TAG] == "promoted" and tags[cd.ROLLOUT_ID_TAG] == state.rollout_id
    assert _weights(env) == {"stable": 100}
    stable = env.deployer.endpoint("stable")
    assert stable is not None and stable.model_version == str(models.good2.version)
    assert old_stable is not None and stable.url != old_stable.url
    assert env.deployer.endpoint("canary") is None and not env.deployer.health("canary").running
    served = _send(env, models, n=20)
    assert served.ok == 20 and set(served.by_variant) == {"stable"}
    assert cd.reconcile_rollout(cfg, paths, registry=models.registry) == state  # no-op


def test_bad_candidates_are_rolled_back_automatically(models: Models,
                                                      paths: PlatformPaths) -> None:
    cfg = _cfg(models)
    cd.start_rollout(cfg, models.good1, None, paths, registry=models.registry)
    env = cd.Environment("churn", "production", paths)

    # 1. scores shifted hard: the prediction-shift check fails at the first canary step
    cd.start_rollout(cfg, models.shifted, None, paths, registry=models.registry)
    state, _ = _drive(cfg, paths, models, until={Phase.ROLLED_BACK})
    assert "prediction_shift" in state.history[-1].reason
    assert state.history[-1].metrics["checks"]["prediction_shift"]["verdict"] == "fail"
    assert _weights(env) == {"stable": 100} and env.deployer.endpoint("canary") is None
    tags = models.registry.get_version_tags("churn", models.shifted.version)
    assert tags[cd.ROLLOUT_TAG] == "rolled_back"
    assert models.registry.get_alias("churn", cd.CHAMPION).version == models.good1.version

    # 2. the canary crashes at 10 %: users see errors only from the canary share
    cd.start_rollout(cfg, models.good2, None, paths, registry=models.registry)
    state, _ = _drive(cfg, paths, models, done=lambda s: s.canary_weight == 10)
    canary = env.deployer.store.load("canary")
    assert canary is not None and canary.pid is not None
    os.killpg(canary.pid, signal.SIGKILL)
    during = _send(env, models, n=300)
    errors = during.variant_errors()
    assert errors.get("stable", 0) == 0 and errors.get("canary", 0) > 0
    assert during.errors <= 0.25 * during.sent  # about the canary's 10 %, never everyone
    state = cd.reconcile_rollout(cfg, paths, registry=models.registry)
    assert state.phase is Phase.ROLLED_BACK and "error_rate" in state.history[-1].reason
    assert _weights(env) == {"stable": 100}
    after = _send(env, models, n=30)
    assert after.ok == 30 and set(after.by_variant) == {"stable"}


def test_blue_green_switch_and_switch_back(models: Models, paths: PlatformPaths) -> None:
    cfg = _cfg(models, strategy="blue_green")
    cd.start_rollout(cfg, models.good1, None, paths, registry=models.registry)
    env = cd.Environment("churn", "production", paths)
    state = cd.start_rollout(cfg, models.good2, None, paths, registry=models.registry)
    assert state.phase is Phase.STAGED and _weights(env) == {"stable": 100, "canary": 0}
    green = env.deployer.endpoint("canary")
    assert green is not None
    _send(env, models, n=40, url=green.url)  # preview traffic straight to green
    state = cd.reconcile_rollout(cfg, paths, registry=models.registry)
    assert state.phase is Phase.CANARY and state.canary_weight == 100
    assert _weights(env) == {"stable": 0, "canary": 100}
    assert set(_send(env, models, n=20).by_variant) == {"canary"}

    state = cd.abort(cfg, paths, "alice", "switch back: checkout errors", registry=models.registry)
    assert state.phase is Phase.ROLLED_BACK and state.history[-1].actor == "alice"
    assert _weights(env) == {"stable": 100}
    assert set(_send(env, models, n=20).by_variant) == {"stable"}


def test_approval_required_waits_then_promotes(models: Models, paths: PlatformPaths) -> None:
    cfg = _cfg(models, steps=[50, 100], approval="before_full")
    cd.start_rollout(cfg, models.good1, None, paths, registry=models.registry)
    cd.start_rollout(cfg, models.good2, None, paths, registry=models.registry)
    state, _ = _drive(cfg, paths, models, until={Phase.AWAITING_APPROVAL})
    env = cd.Environment("churn", "production", paths)
    assert _weights(env) == {"stable": 50, "canary": 50}
    _send(env, models, n=60)
    assert cd.reconcile_rollout(cfg, paths, registry=models.registry).phase is \
        Phase.AWAITING_APPROVAL  # waits: passing analysis is not an approval

    # the stable server dies while the rollout waits; a new controller restarts it and
    # re-points the router at it (the candidate at 50 % is left to the analysis)
    stable = env.deployer.store.load("stable")
    assert stable is not None and stable.pid is not None
    os.killpg(stable.pid, signal.SIGKILL)
    time.sleep(0.2)
    state = cd.reconcile_rollout(cfg, paths, registry=models.registry,
                                 env=cd.Environment("churn", "production", paths))
    assert state.phase is Phase.AWAITING_APPROVAL
    again = env.deployer.endpoint("stable")
    assert again is not None and again.url != stable.url and env.deployer.health("stable").ready
    assert env.variants()["stable"]["url"] == again.url
    assert _send(env, models, n=20).ok == 20

    state = cd.approve(cfg, paths, "bob", "change ticket 42", registry=models.registry)
    assert state.phase is Phase.PROMOTED, state.history[-1].reason
    assert state.approval is not None
    assert state.approval.by == "bob"
    assert _weights(env) == {"stable": 100}
    assert models.registry.get_alias("churn", cd.CHAMPION).version == models.good2.version
    with pytest.raises(Exception, match="nothing to approve"):
        cd.approve(cfg, paths, "bob", "again", registry=models.registry)
