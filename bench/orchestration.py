"""Orchestration overhead: the whole CI graph through Dagster vs the same domain functions direct.

    .venv/bin/python bench/orchestration.py [--rows 5000] [--repeats 3] [--multiprocess]

Both paths run the same ml_platform.pipeline functions on the same data commit in this process,
warm (one untimed run first). The overhead is Dagster's: step orchestration, event log writes
(SQLite), IO-manager pickling. Target: <= 5 s for the whole graph on the embedded default.
--multiprocess also times Dagster's default multiprocess executor (a fresh interpreter per step)
as the baseline the in-process choice is measured against.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_OVERHEAD_S = 5.0


def _direct(cfg, store, registry, reports, commit) -> None:
    from ml_platform import model_ci, model_gates, pipeline
    from ml_platform.config import GateMode

    snap = pipeline.load_snapshot(store, cfg, commit)
    pipeline.row_count_verdict(snap, cfg)
    pipeline.validate_snapshot(snap, cfg, reports)
    pipeline.drift_snapshot(snap, cfg, store, registry, reports)
    cand = pipeline.train_candidate(snap, cfg, registry, code_sha="bench", run_tags={})
    pipeline.evaluate_candidate(snap, cand, cfg, registry, reports)
    # The same model gates and decision the job runs, so the comparison is like for like.
    verdicts = [
        model_ci.run_model_gate(gate, snap, cand, cfg, registry, reports).verdict
        for gate in {**model_ci.CANDIDATE_GATES, **model_ci.EVALUATION_GATES}
        if cfg.gates.mode(gate) is not GateMode.OFF
    ]
    decision = model_gates.decide(verdicts)
    registry.set_version_tags(cfg.name, cand.ref.version, {"ml_platform.decision": decision.decision.value})


def _completed(res) -> bool:
    """The whole graph ran: success, or stopped only by a gate's verdict (e.g. promotion HOLD on
    repeated identical data), which costs the same orchestration as a pass."""
    failures = [e for e in res.all_events if e.is_step_failure]
    return res.success or all("DagsterAssetCheckFailedError" in str(e.event_specific_data) for e in failures)


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def multiprocess_job():
    """Module-level so Dagster can reconstruct the job in each step process."""
    import dagster as dg

    from definitions import build_defs
    from ml_platform.config import load_project

    cfg = load_project(ROOT / "projects" / "churn.yaml")
    return build_defs([cfg], executor=dg.multiprocess_executor).resolve_job_def("churn_ci")


PRELOAD = ["dagster", "definitions", "ml_platform.pipeline", "pandas", "sklearn", "mlflow", "evidently", "pandera.pandas"]


def forkserver_job():
    """Multiprocess executor, forkserver start method, heavy modules preloaded in the server."""
    import dagster as dg

    from definitions import build_defs
    from ml_platform.config import load_project

    executor = dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": PRELOAD}}}
    )
    cfg = load_project(ROOT / "projects" / "churn.yaml")
    return build_defs([cfg], executor=executor).resolve_job_def("churn_ci")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--multiprocess", action="store_true")
    ap.add_argument("--forkserver", action="store_true", help="also time multiprocess + forkserver + preload")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    os.environ["ML_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True)

    import dagster as dg

    from definitions import defs
    from ml_platform import dataset, demo_data
    from ml_platform.config import load_project
    from ml_platform.data.local import LocalDataStore
    from ml_platform.settings import platform_paths
    from ml_platform.tracking import ModelRegistry

    cfg = load_project(ROOT / "projects" / "churn.yaml")
    paths = platform_paths().ensure()
    store = LocalDataStore(paths.data_store)
    store.create_repository(cfg.dataset.repository)
    frame = demo_data.generate_churn(args.rows, seed=1)
    commit = store.commit(
        cfg.dataset.repository,
        "main",
        {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)},
        message="bench",
        author="bench",
    ).id
    registry = ModelRegistry(paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    job = defs().resolve_job_def("churn_ci")
    instance = dg.DagsterInstance.get()
    run_tags = {"ml_platform/data_commit": commit, "ml_platform/project": "churn"}

    def through_dagster() -> None:
        res = job.execute_in_process(
            instance=instance,
            tags=run_tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        assert _completed(res), "the bench run failed"

    def direct() -> None:
        _direct(cfg, store, registry, paths.reports, commit)

    direct(), through_dagster()  # warm: imports, MLflow schema migration, first registration
    d = _timed(direct, args.repeats)
    g = _timed(through_dagster, args.repeats)
    rows = [("direct (domain functions)", d), ("Dagster in-process executor", g)]
    if args.multiprocess:
        from dagster import execute_job, reconstructable

        def multi() -> None:
            res = execute_job(reconstructable(multiprocess_job), instance=instance, tags=run_tags)
            assert _completed(res)

        rows.append(("Dagster multiprocess executor", _timed(multi, args.repeats)))
    if args.forkserver:
        from dagster import execute_job, reconstructable

        def fork() -> None:
            res = execute_job(reconstructable(forkserver_job), instance=instance, tags=run_tags)
            assert _completed(res)

        fork()  # warm: starts the forkserver and preloads
        rows.append(("multiprocess + forkserver/preload", _timed(fork, args.repeats)))

    print(f"whole CI graph on {args.rows} rows, {args.repeats} repeats (median, min, max in s)")
    for name, ts in rows:
        print(f"  {name:32s} {statistics.median(ts):7.2f} {min(ts):7.2f} {max(ts):7.2f}")
    overhead = statistics.median(g) - statistics.median(d)
    print(
        f"  orchestration overhead (in-process - direct): {overhead:.2f} s "
        f"(ratio {statistics.median(g) / statistics.median(d):.2f}x) "
        f"target <= {TARGET_OVERHEAD_S:.0f} s: {'PASS' if overhead <= TARGET_OVERHEAD_S else 'FAIL'}"
    )
    for name, ts in rows[2:]:
        extra = statistics.median(ts) - statistics.median(d)
        verdict = "PASS" if extra <= TARGET_OVERHEAD_S else "FAIL"
        print(f"  {name} overhead: {extra:.2f} s (target <= {TARGET_OVERHEAD_S:.0f} s: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
