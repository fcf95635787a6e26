"""Time from an injected canary failure to the stable variant serving 100 % of traffic.

    .venv/bin/python bench/rollback.py [--repeats 3] [--rate 200]

Builds the real production environment in a temporary platform home (router + stable and
canary model servers as processes on 127.0.0.1, MLflow in SQLite), puts a good candidate at
30 % and, in each repeat:

1. replays traffic through the router while the canary is healthy;
2. injects the failure: SIGKILL of the canary server (users of its 30 % now get 502s);
3. keeps traffic flowing, calls ``cd.reconcile_rollout`` and records
   * the verdict time: when the reconciler asked for the time to decide (after its analysis),
   * the applied time: when a watcher polling ``GET /admin/state`` every 2 ms first sees the
     stable variant alone at 100 %;
4. counts the client errors between the injection and the applied time.

Target: applied - verdict <= 1 s. Wall-clock on a possibly shared machine; every repeat is
printed, then the best and the worst.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from ml_platform import cd, training
from ml_platform.config import AnalysisSpec, ProjectConfig, RolloutSpec, load_project
from ml_platform.rollout import Phase
from ml_platform.settings import PlatformPaths, platform_paths
from ml_platform.tracking import ModelRef, ModelRegistry
from ml_platform.traffic import ReplayStats, replay

ROOT = Path(__file__).resolve().parents[1]


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n), "tenure_months": rng.integers(0, 120, n),
        "monthly_charges": rng.uniform(10, 200, n).round(2),
        "support_calls": rng.poisson(2, n), "data_usage_gb": rng.gamma(2.0, 20.0, n).round(1),
        "plan": rng.choice(["basic", "standard", "premium"], n),
        "contract": rng.choice(["monthly", "annual", "two_year"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "gender": rng.choice(["female", "male", "nonbinary"], n),
    })
    logit = 0.6 * df["support_calls"] - 0.03 * df["tenure_months"] - 1.0
    df["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@dataclass(frozen=True)
class Setup:
    cfg: ProjectConfig
    paths: PlatformPaths
    registry: ModelRegistry
    refs: tuple[ModelRef, ...]
    rows: pd.DataFrame
    labels: pd.Series


def setup(home: Path, candidates: int) -> Setup:
    paths = platform_paths(home).ensure()
    registry = ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    spec = RolloutSpec(steps=[30, 100], analysis=AnalysisSpec(min_requests=20,
                                                              max_p95_latency_ms=2000))
    cfg = cfg.model_copy(update={"rollout": spec, "model": cfg.model.model_copy(
        update={"params": {"max_iter": 20}})})
    train_df, holdout = training.split_holdout(churn_frame(400, 1), cfg)
    refs = []
    for seed in range(1, candidates + 2):
        trained = training.train(train_df, cfg, seed=seed, holdout_rows=len(holdout))
        refs.append(registry.log_candidate(cfg, trained, {}, params={}, tags={},
                                           input_example=train_df.head(5),
                                           data_commit="b" * 40, code_sha="c" * 40))
    return Setup(cfg, paths, registry, tuple(refs), holdout[cfg.training_features],
                 holdout[cfg.target])


class Watcher(threading.Thread):
    """Polls the router's admin state until stable is alone at 100 %."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.applied_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2.0) as c:
            while not self.stop.is_set():
                state = c.get(f"{self.url}/admin/state",
                              headers={"authorization": f"Bearer {self.token}"}).json()
                weights = {n: v["weight"] for n, v in state["variants"].items()}
                if weights.get("stable") == 100 and not weights.get("canary"):
                    self.applied_at = time.perf_counter()
                    return
                time.sleep(0.002)


class VerdictClock:
    """The reconciler's clock: its first call in a reconcile is the moment it decides."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self) -> datetime:
        self.calls.append(time.perf_counter())
        return datetime.now(UTC)


def one_repeat(s: Setup, candidate: ModelRef, rate: float) -> dict[str, float]:
    cfg, paths, reg = s.cfg, s.paths, s.registry
    env = cd.Environment(cfg.name, "production", paths)
    cd.start_rollout(cfg, candidate, None, paths, registry=reg)
    state = cd.reconcile_rollout(cfg, paths, registry=reg)  # STAGED -> canary 30 %
    assert state.canary_weight == 30, state.phase
    send: Callable[[float], ReplayStats] = lambda secs: replay(  # noqa: E731
        env.router_url(), s.rows, s.labels, rate_per_s=rate, max_requests=int(rate * secs) + 1,
        max_seconds=secs, concurrency=4)
    warm = send(1.0)
    canary = env.deployer.store.load("canary")
    assert canary is not None and canary.pid is not None
    injected = time.perf_counter()
    os.killpg(canary.pid, signal.SIGKILL)
    during: list[ReplayStats] = []
    traffic = threading.Thread(target=lambda: during.append(send(1.5)))
    traffic.start()
    time.sleep(0.5)  # let the router see the canary fail
    watcher, clock = Watcher(env.router_url(), env.token()), VerdictClock()
    watcher.start()
    called = time.perf_counter()
    state = cd.reconcile_rollout(cfg, paths, registry=reg, now=clock)
    returned = time.perf_counter()
    watcher.join(timeout=10)
    traffic.join()
    assert state.phase is Phase.ROLLED_BACK, state.history[-1].reason
    assert watcher.applied_at is not None and clock.calls
    verdict = clock.calls[0]
    return {
        "warm_ok": warm.ok, "during_sent": during[0].sent,
        "during_errors": during[0].errors,
        "errors_by_variant": during[0].variant_errors(),  # type: ignore[dict-item]
        "reconcile_call_to_verdict_ms": 1000 * (verdict - called),
        "verdict_to_applied_ms": 1000 * (watcher.applied_at - verdict),
        "injection_to_applied_ms": 1000 * (watcher.applied_at - injected),
        "reconcile_total_ms": 1000 * (returned - called),
        "reason": state.history[-1].reason[:90],  # type: ignore[dict-item]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        t0 = time.perf_counter()
        s = setup(Path(tmp) / "home", args.repeats)
        print(f"setup (train + register {len(s.refs)} models): {time.perf_counter() - t0:.1f} s")
        try:
            cd.start_rollout(s.cfg, s.refs[0], None, s.paths, registry=s.registry)
            results = [one_repeat(s, ref, args.rate) for ref in s.refs[1:]]
        finally:
            cd.Environment(s.cfg.name, "production", s.paths).teardown()
    for i, r in enumerate(results, 1):
        print(f"repeat {i}: " + ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    applied = [float(r["verdict_to_applied_ms"]) for r in results]
    print(f"verdict -> stable 100 % applied: best {min(applied):.1f} ms, worst "
          f"{max(applied):.1f} ms (target <= 1000 ms): "
          f"{'PASS' if max(applied) <= 1000 else 'FAIL'}")


if __name__ == "__main__":
    main()
