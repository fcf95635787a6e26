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
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="also write the gates as JUnit XML")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow store (default: the platform home's)")
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


def main() -> None:
    try:
        app()
    except MLPlatformError as e:
        err.print(f"[red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
