"""Shared fixtures: every test gets its own platform home, so nothing touches ./.ml-platform."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(available: bool, what: str) -> None:
    """Skip with a reason on a developer machine; fail under CI=true, where services must run."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{what} is required in CI (CI=true) but is not available; .ci/run should start it")
    pytest.skip(f"{what} is not available on this machine (CI installs and starts it: see .ci/run)")


@pytest.fixture(autouse=True)
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "platform-home"
    monkeypatch.setenv("ML_PLATFORM_HOME", str(home))
    monkeypatch.delenv("ML_PLATFORM_DATA_BACKEND", raising=False)
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    return home
