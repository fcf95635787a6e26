"""`make demo`: the whole loop on the embedded defaults, non-interactively.

Six data commits, each picked up by the data commit sensor and run by the job it targets (the
churn project's ``on_commit: production``: CI, then image, staging and the production rollout):

1. clean: every gate passes, PROMOTE; image (when a Docker engine is there), staging, and a first
   production deployment straight to 100 %: the model becomes the champion;
2. corrupted: the schema gate blocks, nothing downstream runs;
3. drifted: the drift gate blocks;
4. noisy labels: trained and registered, then REJECTed by no_regression_vs_champion;
5. next month's clean data: PROMOTE, then a canary 10 -> 30 -> 100 % under replayed live
   traffic, advanced by the rollout sensor's ticks: PROMOTED, the new champion;
6. a changed label definition upstream: every offline gate passes (the holdout moved with the
   labels), but in the canary the predictions shift against the stable model: ROLLED_BACK.

Prints a readable summary, `ml-platform why` for decided versions, the notifications,
`ml-platform history churn`, and, as the very last line, a JSON object with one entry per commit
(decision, failed checks, rollout outcome). Model servers are stopped at exit unless
ML_PLATFORM_DEMO_KEEP_SERVING=1.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
from rich.console import Console
from rich.table import Table

from ml_platform import cd, dataset, demo_data
from ml_platform.config import ProjectConfig, load_project
from ml_platform.data.store import DataStore
from ml_platform.settings import platform_paths
from ml_platform.traffic import replay
from orchestration import RunOutcome, execute_requests, sensor_run_requests, sensor_tick

ROOT = Path(__file__).resolve().parent
# Wide enough for the gate table when piped to a file or CI log (rich defaults to 80 there).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _scenarios(rows: int) -> list[tuple[str, str, Callable[[], pd.DataFrame]]]:
    clean = lambda: demo_data.generate_churn(rows, seed=1)  # noqa: E731
    return [
        ("clean", "Monthly customer snapshot (clean)", clean),
        (
            "corrupted",
            "Snapshot from the new CRM export (nulls, text in numeric columns, bad ages)",
            lambda: demo_data.with_out_of_range(
                demo_data.with_wrong_dtype(
                    demo_data.with_nulls(demo_data.generate_churn(rows, seed=2), "tenure_months", 0.02, seed=2),
                    "monthly_charges", 0.01, seed=3,
                ),
                "age", 0.01, seed=4,
            ),
        ),
        (
            "drifted",
            "Snapshot after the price change (charges, usage and plans shifted)",
            lambda: demo_data.with_shift(
                demo_data.generate_churn(rows, seed=5), ["monthly_charges", "data_usage_gb", "plan"], 1.0, seed=5
            ),
        ),
        (
            "noisy_labels",
            "Snapshot with a labelling bug (30 % of 'churned' flipped)",
            lambda: demo_data.with_noisy_labels(demo_data.generate_churn(rows, seed=6), "churned", 0.3, seed=6),
        ),
        ("next_month", "Next month's customer snapshot (clean)", lambda: demo_data.generate_churn(rows, seed=7)),
        ("relabelled", "Snapshot after upstream changed the churn definition (90 -> 180 days)", _relabelled(rows)),
    ]


def _relabelled(rows: int) -> Callable[[], pd.DataFrame]:
    # Same customers and features, churn base rate 25 % -> 50 %: holdout metrics and the
    # comparison with the champion (on this same holdout) pass; live scores shift by ~0.26.
    return lambda: demo_data.generate_churn(rows, seed=8, positive_rate=0.5)


def _commit(store: DataStore, cfg: ProjectConfig, frame: pd.DataFrame, message: str, kind: str) -> str:
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=cfg.dataset.branch)
    payload = {cfg.dataset.path: dataset.to_bytes(frame, cfg.dataset.path)}
    commit = store.commit(
        repo, cfg.dataset.branch, payload, message=message, author="demo", metadata={"scenario": kind}
    )
    return commit.id


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _print_outcome(kind: str, outcome: RunOutcome) -> None:
    colours = {"PASS": "green", "PROMOTE": "green", "BLOCKED": "red", "REJECT": "red"}
    colour = colours.get(outcome.decision, "yellow")
    console.print(f"  data commit {outcome.data_commit[:12]} → [bold {colour}]{outcome.decision}[/]"
                  f"  (run {outcome.run_id[:8]})")
    table = Table("asset", "gate", "verdict", "why", show_lines=False)
    for g in outcome.gates:
        table.add_row(g.asset, g.check, "[green]pass[/]" if g.passed else "[red]FAIL[/]",
                      str(g.metadata.get("message", ""))[:110])
    console.print(table)
    for g in outcome.gates:
        if g.passed or g.check != "schema_valid":
            continue
        console.print("  failure cases per check (Pandera, lazy):")
        console.print(_indent(str(g.metadata.get("detail/error_counts", ""))), markup=False)
        console.print("  first failure cases:")
        console.print(_indent("\n".join(str(g.metadata.get("detail/failure_cases", "")).splitlines()[:12])), markup=False)
    for g in outcome.gates:
        if g.check == "no_regression_vs_champion" and not g.passed:
            m = g.metadata
            console.print(
                f"  no_regression_vs_champion: candidate v{m['model_version']} {m['detail/metric']} = "
                f"{m['observed']:.4f}, champion v{m['detail/champion_version']} = {m['baseline']:.4f}, "
                f"bound >= {m['threshold']:.4f}, difference {m['detail/difference']:.4f} "
                f"({m['detail/confidence']:.0%} CI [{m['detail/ci_low']:.4f}, {m['detail/ci_high']:.4f}])",
                markup=False,
                soft_wrap=True,
            )
    if outcome.promotion is not None:
        console.print(f"  decision: {outcome.promotion.get('reason')}", markup=False)
    if outcome.error:
        console.print(f"  [yellow]error:[/] {outcome.error}")
    console.print(f"  materialized: {', '.join(outcome.materialized) or 'nothing'}")


def _print_why(project: str, outcomes: list[RunOutcome]) -> None:
    """`ml-platform why` for the promoted and the rejected versions, as a CI server would run it."""
    from ml_platform.cli import app

    for o in outcomes:
        if o.promotion is None:
            continue
        version = o.promotion["model_version"]
        console.rule(f"[bold]$ ml-platform why {project} --version {version}")
        sys.stdout.flush()
        code = app(["why", project, "--version", str(version)], standalone_mode=False)
        console.print(f"  (exit code {code})")


def _print_alerts(defs: dg.Definitions, instance: dg.DagsterInstance, path: Path) -> None:
    """One tick of the failure alerts sensor: one notification per failed check and failed run."""
    before = len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0
    sensor_run_requests(defs, instance, "failure_alerts_sensor", None)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    console.rule("[bold]failure notifications (failure_alerts_sensor)")
    console.print(f"  {len(lines) - before} sent to {path} (set ML_PLATFORM_ALERT_WEBHOOK_URL for Slack):")
    for line in lines[before:]:
        n = json.loads(line)
        console.print(f"  - [{n['severity']}] {n['title']}  {n['link']}", markup=False, soft_wrap=True)


def _prepare_dagster_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


ROLLOUT_TICKS = 12  # sensor ticks before the demo gives up on a rollout
KEEP_SERVING_ENV = "ML_PLATFORM_DEMO_KEEP_SERVING"


@dataclass(frozen=True)
class Traffic:
    """Live customers: fresh rows from the same population, and their labels as feedback."""

    rows: pd.DataFrame
    labels: pd.Series


def _live_traffic(cfg: ProjectConfig, rows: int = 3000) -> Traffic:
    frame = demo_data.generate_churn(rows, seed=99)
    return Traffic(frame[cfg.training_features], frame[cfg.target])


def _drive_rollout(defs: dg.Definitions, instance: dg.DagsterInstance, cfg: ProjectConfig,
                   traffic: Traffic, cursor: str | None) -> tuple[str | None, str | None]:
    """Replay live traffic, then one rollout_sensor tick, until the rollout ends. Returns the
    final phase and the sensor cursor."""
    paths = platform_paths()
    env = cd.Environment(cfg.name, "production", paths)
    sensor = f"{cfg.name}_rollout_sensor"
    for tick in range(ROLLOUT_TICKS):
        if tick and env.store.active(cfg.name) is not None:  # traffic for the step to be judged on
            order = traffic.rows.sample(frac=1.0, random_state=tick).index  # other customers each time
            stats = replay(env.router_url(), traffic.rows.loc[order], traffic.labels.loc[order],
                           rate_per_s=300, max_requests=1000, max_seconds=15, concurrency=4)
            console.print(f"    traffic: {stats.summary()}", markup=False, soft_wrap=True)
        result = sensor_tick(defs, instance, sensor, cursor)
        cursor = result.cursor or cursor
        for event in result.asset_events:
            meta = {k: getattr(v, "value", v) for k, v in (event.metadata or {}).items()}
            if isinstance(event, dg.AssetObservation):
                console.print(f"    {sensor}: {meta['phase']} at {meta['canary_weight']} % — {meta['reason']}",
                              markup=False, soft_wrap=True)
        if env.store.active(cfg.name) is None:
            break
    last = env.store.latest(cfg.name)
    return (str(last.phase) if last else None), cursor


def _rollout_of(outcome: RunOutcome, cfg: ProjectConfig) -> str | None:
    """PROMOTED / ROLLED_BACK for a commit whose run started a production rollout, else None."""
    if f"{cfg.name}/production_rollout" not in outcome.materialized or outcome.promotion is None:
        return None
    version = str(outcome.promotion["model_version"])
    store = cd.Environment(cfg.name, "production", platform_paths()).store
    states = [st for st in store.list(cfg.name) if st.candidate_version == version]
    return states[-1].phase.value.upper() if states and states[-1].terminal else None


def _print_cli(*args: str) -> None:
    from ml_platform.cli import app

    console.rule(f"[bold]$ ml-platform {' '.join(args)}")
    sys.stdout.flush()
    app(list(args), standalone_mode=False)
    sys.stdout.flush()


def _stop_serving(cfg: ProjectConfig) -> None:
    if os.environ.get(KEEP_SERVING_ENV) == "1":
        console.print(f"  servers keep running ({KEEP_SERVING_ENV}=1): `ml-platform rollout status {cfg.name}`")
        return
    for name in ("staging", "production"):
        cd.Environment(cfg.name, name, platform_paths()).teardown()  # type: ignore[arg-type]


def main(rows: int = 8000) -> int:
    paths = platform_paths().ensure()
    _prepare_dagster_home(Path(os.environ.setdefault("DAGSTER_HOME", str(paths.home / "dagster"))))
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from assets.jobs import data_commit_job_name
    from definitions import defs as load_defs
    from ml_platform.data.factory import open_store

    cfg = load_project(ROOT / "projects" / "churn.yaml")
    defs, store = load_defs(), open_store("local")
    instance = dg.DagsterInstance.get()
    job = data_commit_job_name(cfg)
    console.print(f"[bold]ml-platform demo[/] — platform home {paths.home}, DAGSTER_HOME {os.environ['DAGSTER_HOME']}")
    console.print(f"  data commits start {job}; model images: "
                  f"{'built' if dg.AssetKey([cfg.name, 'model_image']) in defs.resolve_all_asset_keys() else 'off (no Docker engine; ML_PLATFORM_IMAGES)'}")
    cursor: str | None = None
    rollout_cursor: str | None = None
    traffic = _live_traffic(cfg)
    results: list[tuple[RunOutcome, str | None]] = []
    try:
        for kind, message, make in _scenarios(rows):
            with console.status(f"committing the {kind} dataset and running {job}…"):
                commit_id = _commit(store, cfg, make(), message, kind)
                requests, cursor = sensor_run_requests(defs, instance, f"{cfg.name}_data_commit_sensor", cursor)
                ran = list(execute_requests(defs, instance, cfg, requests, console_log_level="CRITICAL",
                                            job_name=job))
            console.rule(f"[bold]{kind}[/]: {message}")
            if not ran:
                console.print(f"  [red]the sensor requested no run for {commit_id}[/]")
                return 1
            for outcome in ran:
                _print_outcome(kind, outcome)
                if f"{cfg.name}/production_rollout" in outcome.materialized:
                    console.print("  production rollout:")
                    _, rollout_cursor = _drive_rollout(defs, instance, cfg, traffic, rollout_cursor)
                rollout = _rollout_of(outcome, cfg)
                if rollout:
                    colour = "green" if rollout == "PROMOTED" else "red"
                    console.print(f"  rollout → [bold {colour}]{rollout}[/]")
                results.append((outcome, rollout))
        outcomes = [o for o, _ in results]
        _print_why(cfg.name, outcomes)
        _print_alerts(defs, instance, paths.notifications)
        _print_cli("history", cfg.name)
        _print_cli("rollout", "status", cfg.name)
    finally:
        _stop_serving(cfg)
    console.rule("[bold]where to look")
    console.print(
        "  Dagster UI:   make ui         → http://127.0.0.1:3000 (runs, asset checks, linked reports,\n"
        "                                  churn/production_rollout's observations per rollout step;\n"
        "                                  the sensors keep picking up new commits)\n"
        "  MLflow UI:    make mlflow-ui  → http://127.0.0.1:5000 (runs, registered model, aliases)\n"
        f"  Reports:      {paths.reports}\n"
        f"  History:      .venv/bin/ml-platform history {cfg.name}\n"
        f"  Data log:     .venv/bin/ml-platform data log --project {cfg.name}"
    )
    errors = [o for o, _ in results if o.decision == "ERROR"]
    summary = {
        "commits": [
            {"data_commit": o.data_commit, "decision": o.decision, "failed_checks": o.failed_checks,
             "rollout": rollout}
            for o, rollout in results
        ]
    }
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
