"""`make demo`: the whole loop on the embedded defaults, non-interactively.

Commits a clean dataset (every gate passes: PROMOTE, the model becomes the champion), a
corrupted one (the schema gate blocks, nothing downstream runs), a drifted one (the drift gate
blocks) and one with heavily noised labels (trained and registered, then REJECTed by
no_regression_vs_champion), each picked up by the data commit sensor and run by the same job the
daemon launches. Prints a readable summary, `ml-platform why churn` for the promoted and the
rejected version, the failure notifications, and, as the very last line, a JSON object with one
entry per commit.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from rich.console import Console
from rich.table import Table

from ml_platform import dataset, demo_data
from ml_platform.config import ProjectConfig, load_project
from ml_platform.data.store import DataStore
from ml_platform.settings import platform_paths
from orchestration import RunOutcome, execute_requests, sensor_run_requests

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
    ]


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


def main(rows: int = 8000) -> int:
    paths = platform_paths().ensure()
    _prepare_dagster_home(Path(os.environ.setdefault("DAGSTER_HOME", str(paths.home / "dagster"))))
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from definitions import defs as load_defs
    from ml_platform.data.factory import open_store

    cfg = load_project(ROOT / "projects" / "churn.yaml")
    defs, store = load_defs(), open_store("local")
    instance = dg.DagsterInstance.get()
    console.print(f"[bold]ml-platform demo[/] — platform home {paths.home}, DAGSTER_HOME {os.environ['DAGSTER_HOME']}")
    cursor: str | None = None
    outcomes: list[RunOutcome] = []
    for kind, message, make in _scenarios(rows):
        with console.status(f"committing the {kind} dataset and running CI…"):
            commit_id = _commit(store, cfg, make(), message, kind)
            requests, cursor = sensor_run_requests(defs, instance, f"{cfg.name}_data_commit_sensor", cursor)
            ran = list(execute_requests(defs, instance, cfg, requests, console_log_level="CRITICAL"))
        console.rule(f"[bold]{kind}[/]: {message}")
        if not ran:
            console.print(f"  [red]the sensor requested no run for {commit_id}[/]")
            return 1
        for outcome in ran:
            _print_outcome(kind, outcome)
            outcomes.append(outcome)
    _print_why(cfg.name, outcomes)
    _print_alerts(defs, instance, paths.notifications)
    console.rule("[bold]where to look")
    console.print(
        "  Dagster UI:   make ui         → http://127.0.0.1:3000 (runs, asset checks, linked reports;\n"
        "                                  the sensor keeps picking up new commits)\n"
        "  MLflow UI:    make mlflow-ui  → http://127.0.0.1:5000 (runs, registered model, aliases)\n"
        f"  Reports:      {paths.reports}\n"
        f"  Data log:     .venv/bin/ml-platform data log --project {cfg.name}"
    )
    errors = [o for o in outcomes if o.decision == "ERROR"]
    summary = {
        "commits": [
            {"data_commit": o.data_commit, "decision": o.decision, "failed_checks": o.failed_checks}
            for o in outcomes
        ]
    }
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
