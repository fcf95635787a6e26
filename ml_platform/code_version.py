"""The code version of the checkout a code server runs from.

Materializations are tagged with it when no sensor pinned a sha for the run. A checkout with
uncommitted changes to tracked files gets a ``-dirty`` suffix, because its code is not what the
sha names; untracked files (caches, local data) do not count.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ml_platform.errors import CodeSourceError

DIRTY_SUFFIX = "-dirty"
_TIMEOUT_S = 10.0


def current_code_sha(repo_dir: Path) -> str | None:
    """HEAD's sha (plus ``-dirty``), or None when ``repo_dir`` is not in a git checkout.

    Also None when git is not installed or the repository has no commit yet: there is no code
    version to report then. Any other git failure raises :class:`CodeSourceError`.
    """
    if not Path(repo_dir).is_dir():
        return None
    head = _git(repo_dir, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
    if head is None:
        return None
    status = _git(repo_dir, ["status", "--porcelain", "--untracked-files=no"])
    return head.strip() + (DIRTY_SUFFIX if status and status.strip() else "")


def _git(repo_dir: Path, args: list[str]) -> str | None:
    """Stdout of git in ``repo_dir``; None when it is not a checkout (or has no HEAD yet)."""
    env = dict(os.environ, LC_ALL="C", GIT_OPTIONAL_LOCKS="0")  # don't race a concurrent git
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        return None  # no git on this machine: nothing can be a checkout
    except subprocess.TimeoutExpired as e:
        raise CodeSourceError(f"git {args[0]} in {repo_dir} took more than {_TIMEOUT_S:g}s") from e
    if done.returncode == 0:
        return done.stdout
    if "not a git repository" in done.stderr or (done.returncode == 1 and not done.stderr.strip()):
        return None  # exit 1 with no output: --verify --quiet on an unborn HEAD
    raise CodeSourceError(
        f"git {args[0]} failed in {repo_dir} (exit {done.returncode}): {done.stderr.strip()[-400:]}"
    )
