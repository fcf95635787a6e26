"""The platform's small HTTP service: webhooks other systems call (lakeFS pre-merge data gate)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from ml_platform.config import load_projects
from ml_platform.service.premerge import TOKEN_ENV, create_app

PROJECTS_ENV = "ML_PLATFORM_PROJECTS"


def app_from_env(projects_dir: str | Path | None = None, backend: str | None = None) -> Starlette:
    """The service for the projects in ``projects_dir`` ($ML_PLATFORM_PROJECTS, ./projects) on
    the configured data backend; the token comes from $ML_PLATFORM_HOOK_TOKEN."""
    from ml_platform.data.factory import open_store

    folder = Path(projects_dir or os.environ.get(PROJECTS_ENV) or "projects")
    projects = load_projects(folder)
    return create_app(projects, lambda: open_store(backend), os.environ.get(TOKEN_ENV, ""))


def serve(host: str = "127.0.0.1", port: int = 8088, projects_dir: str | Path | None = None,
          backend: str | None = None) -> None:
    import uvicorn

    uvicorn.run(app_from_env(projects_dir, backend), host=host, port=port, log_level="info")
