"""Where rollouts live: one JSON file per rollout, one folder and one lock per project.

Layout under ``root``::

    <project>/.lock                  flock(2) target: one writer per project across processes
    <project>/<rollout_id>.json      a RolloutState (see _codec), replaced atomically
    <project>/plan.json              a decision being applied (see Reconciler), if any

Writes go to a temporary file that is fsynced, then ``os.replace``-d over the target, then the
folder is fsynced, so a reader sees the old or the new state, never half of one. A saved state's
history must extend the stored one: history is append-only. At most one rollout per project is
live (not PROMOTED / ROLLED_BACK) at a time. The lock uses ``fcntl`` (POSIX only).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_platform.config import RolloutSpec
from ml_platform.errors import RolloutError
from ml_platform.rollout._codec import (
    intent_from_dict,
    intent_to_dict,
    state_from_dict,
    state_to_dict,
)
from ml_platform.rollout.machine import new_rollout
from ml_platform.rollout.model import Intent, RolloutState

_PROJECT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ROLLOUT_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}-[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}$")
_PLAN = "plan.json"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Plan:
    """A decision written down before it is applied, so a crash mid-way can finish it."""

    state: RolloutState  # what to persist once the intents are applied
    intents: tuple[Intent, ...]


class RolloutStore:
    def __init__(self, root: str | os.PathLike[str], *, clock: Callable[[], datetime] = utc_now):
        self._root = Path(root)
        self._clock = clock
        self._guard = threading.RLock()
        self._held: dict[str, tuple[int, int]] = {}  # project -> (fd, depth)

    @property
    def root(self) -> Path:
        return self._root

    @contextmanager
    def locked(self, project: str) -> Iterator[None]:
        """Exclusive access to one project's rollouts; re-entrant within a thread."""
        folder = self._folder(project)
        with self._guard:
            fd, depth = self._held.get(project, (-1, 0))
            if depth == 0:
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other process is done
            self._held[project] = (fd, depth + 1)
            try:
                yield
            finally:
                self._release(project)

    def _release(self, project: str) -> None:
        fd, depth = self._held[project]
        if depth > 1:
            self._held[project] = (fd, depth - 1)
            return
        del self._held[project]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def start(
        self,
        project: str,
        candidate: str,
        stable: str,
        spec: RolloutSpec,
        *,
        actor: str = "cli",
    ) -> RolloutState:
        """Record a PENDING rollout; refuses while another rollout of the project is live."""
        if not candidate or not stable or candidate == stable:
            raise RolloutError(
                f"a rollout needs distinct candidate and stable versions, got "
                f"candidate={candidate!r} stable={stable!r}"
            )
        with self.locked(project):
            live = self.active(project)
            if live is not None:
                raise RolloutError(
                    f"project {project} already has rollout {live.rollout_id} in phase "
                    f"{live.phase}; finish it (approve) or abort it before starting another"
                )
            now = self._clock()
            state = new_rollout(
                project=project,
                rollout_id=f"{project}-{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}",
                candidate_version=candidate,
                stable_version=stable,
                spec=spec,
                now=now,
                actor=actor,
            )
            self._write(self._state_path(state.rollout_id), state_to_dict(state))
            return state

    def save(self, state: RolloutState) -> None:
        """Persist a new version of an existing rollout (history may only grow)."""
        with self.locked(state.project):
            old = self.get(state.rollout_id)
            _check_successor(old, state)
            self._write(self._state_path(state.rollout_id), state_to_dict(state))

    def get(self, rollout_id: str) -> RolloutState:
        path = self._state_path(rollout_id)
        if not path.is_file():
            raise RolloutError(f"no rollout {rollout_id} under {self._root}")
        return self._read_state(path)

    def list(self, project: str) -> list[RolloutState]:
        """Every rollout of a project, oldest first."""
        folder = self._folder(project)
        if not folder.is_dir():
            return []
        states = [self._read_state(p) for p in folder.glob(f"{project}-*.json")]
        return sorted(states, key=lambda s: (s.started_at, s.rollout_id))

    def active(self, project: str) -> RolloutState | None:
        live = [s for s in self.list(project) if not s.terminal]
        if len(live) > 1:
            ids = ", ".join(s.rollout_id for s in live)
            raise RolloutError(
                f"project {project} has {len(live)} live rollouts ({ids}); at most one may be "
                f"live: abort the extra ones"
            )
        return live[0] if live else None

    def latest(self, project: str) -> RolloutState | None:
        rollouts = self.list(project)
        return rollouts[-1] if rollouts else None

    def write_plan(self, plan: Plan) -> None:
        data = {
            "state": state_to_dict(plan.state),
            "intents": [intent_to_dict(i) for i in plan.intents],
        }
        self._write(self._folder(plan.state.project) / _PLAN, data)

    def pending_plan(self, project: str) -> Plan | None:
        path = self._folder(project) / _PLAN
        if not path.is_file():
            return None
        data = self._read_json(path)
        try:
            intents = tuple(intent_from_dict(i) for i in data["intents"])
            return Plan(state=state_from_dict(data["state"]), intents=intents)
        except (KeyError, ValueError, TypeError) as e:
            raise RolloutError(f"cannot read rollout plan {path}: {e!r}") from e

    def clear_plan(self, project: str) -> None:
        path = self._folder(project) / _PLAN
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    def _folder(self, project: str) -> Path:
        if not _PROJECT.match(project):
            raise RolloutError(f"invalid project name {project!r}: expected {_PROJECT.pattern}")
        return self._root / project

    def _state_path(self, rollout_id: str) -> Path:
        if not _ROLLOUT_ID.match(rollout_id):
            raise RolloutError(
                f"invalid rollout id {rollout_id!r}: expected <project>-<UTC time>-<8 hex>"
            )
        return self._folder(rollout_id.split("-", 1)[0]) / f"{rollout_id}.json"

    def _read_state(self, path: Path) -> RolloutState:
        try:
            return state_from_dict(self._read_json(path))
        except (KeyError, ValueError, TypeError) as e:
            raise RolloutError(f"cannot read rollout state {path}: {e!r}") from e

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RolloutError(f"cannot read {path}: {e}") from e
        if not isinstance(data, dict):
            raise RolloutError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # no stray temp files; the target is untouched
            raise
        _fsync_dir(path.parent)


def _check_successor(old: RolloutState, new: RolloutState) -> None:
    """A saved state must be the same rollout with its history extended, never rewritten."""
    fixed = ("project", "candidate_version", "stable_version", "spec", "started_at")
    changed = [f for f in fixed if getattr(old, f) != getattr(new, f)]
    if changed:
        raise RolloutError(f"rollout {old.rollout_id}: {', '.join(changed)} cannot change")
    if new.history[: len(old.history)] != old.history:
        raise RolloutError(
            f"rollout {old.rollout_id}: history is append-only; the new state rewrites "
            f"entries of the stored one ({len(old.history)} stored, {len(new.history)} given)"
        )
    if old.terminal and new != old:
        raise RolloutError(f"rollout {old.rollout_id} is {old.phase} (terminal) and cannot change")


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
