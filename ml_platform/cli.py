"""The ``ml-platform`` command line. Every command has --help; errors print one clear sentence."""

from __future__ import annotations

import getpass
import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ml_platform.config import ProjectConfig, load_project
from ml_platform.errors import MLPlatformError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="ML CI/CD on Dagster."
)
data_app = typer.Typer(no_args_is_help=True, help="Versioned data: commit, log, validate.")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="project name (file in --projects) or path to a project file")
]
ProjectsDirOpt = Annotated[Path, typer.Option("--projects", help="folder of project files")]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help="data backend: local (default) or lakefs; env ML_PLATFORM_DATA_BACKEND")
]


def resolve_project(project: str, projects_dir: Path) -> ProjectConfig:
    candidate = Path(project)
    if candidate.suffix in (".yaml", ".yml", ".toml"):
        return load_project(candidate)
    for ext in (".yaml", ".yml", ".toml"):
        path = projects_dir / f"{project}{ext}"
        if path.is_file():
            return load_project(path)
    raise MLPlatformError(f"no project '{project}' in {projects_dir}/ (looked for {project}.yaml/.yml/.toml)")


def _parse_meta(items: list[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="--meta")
        meta[key] = value
    return meta


@data_app.command("commit")
def data_commit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="local file to commit")],
    message: Annotated[str, typer.Option("--message", "-m", help="commit message")],
    project: ProjectOpt = None,
    projects_dir: ProjectsDirOpt = Path("projects"),
    repo: Annotated[str | None, typer.Option(help="repository (default: the project's)")] = None,
    branch: Annotated[str | None, typer.Option(help="branch (default: the project's)")] = None,
    path: Annotated[str | None, typer.Option("--to", help="path in the repository (default: the project's)")] = None,
    author: Annotated[str | None, typer.Option(help="author (default: current user)")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE commit metadata")] = None,
    backend: BackendOpt = None,
) -> None:
    """Commit a local file to the data store (creates the repository on first use)."""
    from ml_platform.data.factory import open_store

    cfg = resolve_project(project, projects_dir) if project else None
    repo = repo or (cfg.dataset.repository if cfg else None)
    branch = branch or (cfg.dataset.branch if cfg else "main")
    path = path or (cfg.dataset.path if cfg else None)
    if not repo or not path:
        raise typer.BadParameter("give --project, or both --repo and --to")
    store = open_store(backend)
    if not store.repository_exists(repo):
        store.create_repository(repo, default_branch=branch)
        console.print(f"created repository [bold]{repo}[/] (branch {branch})")
    commit = store.commit(
        repo, branch, {path: file.read_bytes()}, message=message,
        author=author or getpass.getuser(), metadata=_parse_meta(meta or []),
    )
    console.print(f"committed {file} as {repo}/{branch}:{path}  [bold]{commit.id}[/]")


@data_app.command("log")
def data_log(
    project: ProjectOpt = None,
    projects_dir: ProjectsDirOpt = Path("projects"),
    repo: Annotated[str | None, typer.Option(help="repository (default: the project's)")] = None,
    ref: Annotated[str | None, typer.Option(help="branch or commit (default: the project's branch)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many commits")] = 20,
    backend: BackendOpt = None,
) -> None:
    """Show the commits of a data branch, newest first."""
    from ml_platform.data.factory import open_store

    cfg = resolve_project(project, projects_dir) if project else None
    repo = repo or (cfg.dataset.repository if cfg else None)
    ref = ref or (cfg.dataset.branch if cfg else "main")
    if not repo:
        raise typer.BadParameter("give --project or --repo")
    table = Table("commit", "time (UTC)", "author", "message", "metadata")
    for c in open_store(backend).log(repo, ref, limit=limit):
        meta = ", ".join(f"{k}={v}" for k, v in c.metadata.items())
        table.add_row(c.id[:12], c.created_at.strftime("%Y-%m-%d %H:%M:%S"), c.author, c.message, meta)
    console.print(table)


@data_app.command("validate")
def data_validate(
    project: ProjectOpt = None,
    projects_dir: ProjectsDirOpt = Path("projects"),
    branch: Annotated[str | None, typer.Option(help="branch or commit to gate (default: the project's)")] = None,
    against: Annotated[
        str | None, typer.Option(help="drift reference: branch or commit (default: the project's branch)")
    ] = None,
    backend: BackendOpt = None,
) -> None:
    """Run the schema and drift gates on a data branch, as the pre-merge hook does (exit 0 pass, 1 fail)."""
    from ml_platform.data.factory import open_store
    from ml_platform.data_gate import gate_ref, render_text

    if not project:
        raise typer.BadParameter("give --project", param_hint="--project")
    cfg = resolve_project(project, projects_dir)
    report = gate_ref(
        open_store(backend), [cfg], cfg.dataset.repository, branch or cfg.dataset.branch,
        reference_ref=against or cfg.dataset.branch,
    )
    for line in render_text(report):
        console.print(line, markup=False, highlight=False)
    raise typer.Exit(0 if report.passed else 1)


@app.command("serve-hooks")
def serve_hooks(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8088,
    projects_dir: ProjectsDirOpt = Path("projects"),
    backend: BackendOpt = None,
) -> None:
    """Serve the lakeFS pre-merge data gate (POST /hooks/lakefs/pre-merge); token from $ML_PLATFORM_HOOK_TOKEN."""
    from ml_platform.service import serve

    serve(host=host, port=port, projects_dir=projects_dir, backend=backend)


@app.command("why")
def why(
    project: Annotated[str, typer.Argument(help="project (= registered model name), e.g. churn")],
    version: Annotated[
        int | None, typer.Option(min=1, help="model version (default: the challenger)")
    ] = None,
    junit_xml: Annotated[
        Path | None, typer.Option("--junit-xml", help="also write the gates as JUnit XML")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow store (default: the platform home's)"),
    ] = None,
    fail_on_hold: Annotated[bool, typer.Option(help="exit 1 on HOLD as well as on REJECT")] = False,
) -> None:
    """Why a model version was promoted, held or rejected: the gate tree from MLflow (exit 1 on REJECT)."""
    from ml_platform import promotion
    from ml_platform.model_gates import render_gate_tree, to_junit_xml
    from ml_platform.settings import platform_paths
    from ml_platform.tracking import ModelRegistry

    paths = platform_paths()
    registry = ModelRegistry(tracking_uri or paths.mlflow_tracking_uri, paths.mlflow_artifact_root)
    decided = promotion.explain(registry, project, version)
    e = decided.evidence
    console.print(
        f"[bold]{project}[/] version {decided.model_version}  data commit {str(e['data_commit'])[:12]}  "
        f"code {str(e['code_sha'])[:12]}  MLflow run {e['mlflow_run_id']}  decided {e['decided_at']}",
        highlight=False,
        soft_wrap=True,
    )
    verdicts = list(decided.verdicts)
    console.print(render_gate_tree(decided.result, verdicts), markup=False, highlight=False, soft_wrap=True)
    if junit_xml is not None:
        junit_xml.parent.mkdir(parents=True, exist_ok=True)
        junit_xml.write_text(
            to_junit_xml(project, str(decided.model_version), verdicts, decided.result), encoding="utf-8"
        )
        console.print(f"JUnit XML: {junit_xml}", highlight=False)
    raise typer.Exit(promotion.exit_code(decided.decision, fail_on_hold=fail_on_hold))


@app.command("demo")
def demo(
    rows: Annotated[int, typer.Option(min=500, help="rows per demo commit")] = 8000,
) -> None:
    """Run the whole loop on the embedded defaults: good, corrupted and drifted data commits."""
    # The demo drives Dagster, which the domain never imports: it lives in the application layer
    # (demo.py beside definitions.py) and is loaded from the working directory.
    sys.path.insert(0, str(Path.cwd()))
    try:
        runner = importlib.import_module("demo")
    except ModuleNotFoundError as e:
        raise MLPlatformError(
            "`ml-platform demo` runs from the repository root (where definitions.py and demo.py are); "
            f"cd there first ({e})"
        ) from e
    raise typer.Exit(runner.main(rows=rows))



# -- continuous delivery: traffic, rollouts, history --------------------------------------------

traffic_app = typer.Typer(no_args_is_help=True, help="Send traffic to a deployed environment.")
rollout_app = typer.Typer(no_args_is_help=True, help="Production rollouts: status, abort.")
app.add_typer(traffic_app, name="traffic")
app.add_typer(rollout_app, name="rollout")
ProjectArg = Annotated[str, typer.Argument(help="project name (file in --projects) or path")]


@traffic_app.command("replay")
def traffic_replay(
    project: ProjectArg,
    env: Annotated[str, typer.Option("--env", help="staging or production")] = "production",
    rate: Annotated[float, typer.Option("--rate", min=0.1, help="requests per second")] = 50.0,
    requests: Annotated[int, typer.Option("--requests", min=1, help="at most this many")] = 500,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1, help="at most this long")] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
    feedback: Annotated[bool, typer.Option(help="send each row's label to /feedback")] = True,
    projects_dir: ProjectsDirOpt = Path("projects"),
    backend: BackendOpt = None,
) -> None:
    """Replay the holdout rows of the project's latest data commit through the router."""
    from ml_platform import training
    from ml_platform.cd import Environment
    from ml_platform.data.factory import open_store
    from ml_platform.pipeline import load_snapshot
    from ml_platform.settings import platform_paths
    from ml_platform.traffic import replay

    if env not in ("staging", "production"):
        raise typer.BadParameter("staging or production", param_hint="--env")
    cfg = resolve_project(project, projects_dir)
    snap = load_snapshot(open_store(backend), cfg, None)
    _, holdout = training.split_holdout(snap.frame, cfg)
    labels = (holdout[cfg.target] == cfg.positive_label).astype(int)
    url = Environment(cfg.name, env, platform_paths()).router_url()  # type: ignore[arg-type]
    console.print(f"replaying {len(holdout)} holdout rows of data commit {snap.commit.id[:12]} "
                  f"to {url}", highlight=False)
    stats = replay(url, holdout[cfg.training_features], labels, rate_per_s=rate,
                   max_requests=requests, max_seconds=seconds, concurrency=concurrency,
                   feedback=feedback)
    console.print(stats.summary(), markup=False, highlight=False, soft_wrap=True)


@app.command("history")
def history_cmd(project: ProjectArg, projects_dir: ProjectsDirOpt = Path("projects")) -> None:
    """What was live in production when, every rollout step and rollback, with its metrics."""
    from ml_platform.cd import default_registry
    from ml_platform.history import history, render_history
    from ml_platform.settings import platform_paths

    cfg, paths = resolve_project(project, projects_dir), platform_paths()
    entries = history(cfg, paths, default_registry(paths))
    console.print(render_history(entries), markup=False, highlight=False, soft_wrap=True)


@app.command("approve")
def approve_cmd(
    project: ProjectArg,
    by: Annotated[str, typer.Option("--by", help="who approves")],
    reason: Annotated[str, typer.Option("--reason", help="why")] = "approved from the command line",
    projects_dir: ProjectsDirOpt = Path("projects"),
) -> None:
    """Approve the production rollout waiting for approval, then let it proceed."""
    from ml_platform import cd
    from ml_platform.settings import platform_paths

    state = cd.approve(resolve_project(project, projects_dir), platform_paths(), by, reason)
    console.print(f"rollout {state.rollout_id}: {state.phase} (candidate at "
                  f"{state.canary_weight} %)", highlight=False)


@rollout_app.command("status")
def rollout_status_cmd(project: ProjectArg, projects_dir: ProjectsDirOpt = Path("projects")) -> None:
    """The production router, its servers and the current or last rollout."""
    from ml_platform import cd
    from ml_platform.settings import platform_paths

    status = cd.rollout_status(resolve_project(project, projects_dir), platform_paths())
    console.print(cd.render_status(status), markup=False, highlight=False, soft_wrap=True)


@rollout_app.command("abort")
def rollout_abort_cmd(
    project: ProjectArg,
    by: Annotated[str, typer.Option("--by", help="who aborts")],
    reason: Annotated[str, typer.Option("--reason", help="why")],
    projects_dir: ProjectsDirOpt = Path("projects"),
) -> None:
    """Roll the live rollout back now: stable to 100 % first, then the candidate is stopped."""
    from ml_platform import cd
    from ml_platform.settings import platform_paths

    state = cd.abort(resolve_project(project, projects_dir), platform_paths(), by, reason)
    console.print(f"rollout {state.rollout_id}: {state.phase}", highlight=False)


def main() -> None:
    try:
        app()
    except MLPlatformError as e:
        err.print(f"[red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
