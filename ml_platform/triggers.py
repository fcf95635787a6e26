"""Which runs a data commit should start: the decision behind ``data_commit_sensor``.

Pure over a :class:`DataStore`: given the cursor (branch -> last commit handled), it returns the
run requests to make, oldest first, and the new cursor. Rules:
- one run per new commit that changes the project's dataset file (others change nothing the
  project reads, so they retrain nothing);
- the first sight of a branch starts from its current head, not its history (unless replay);
- a branch reset or force-push is reported as an event and the cursor moves to the new head.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ml_platform.config import ProjectConfig
from ml_platform.data.store import Commit, DataStore, iter_new_commits
from ml_platform.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class DataRun:
    commit: Commit
    branch: str
    reset_from: str | None = None  # the commit the cursor held when the branch was reset

    @property
    def run_key(self) -> str:
        return self.commit.id


@dataclass(frozen=True)
class DataRunPlan:
    runs: list[DataRun]
    cursor: str  # JSON {branch: commit id}
    events: list[str] = field(default_factory=list)
    skip_reason: str | None = None


def parse_cursor(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"sensor cursor is not JSON ({e}); reset the sensor's cursor in the UI") from e
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError("sensor cursor must map branch names to commit ids; reset it in the UI")
    return dict(value)


def touches_dataset(store: DataStore, cfg: ProjectConfig, commit: Commit) -> bool:
    if not commit.parents:
        return cfg.dataset.path in store.list_files(cfg.dataset.repository, commit.id, cfg.dataset.path)
    changes = store.diff(cfg.dataset.repository, commit.parents[0], commit.id)
    return any(c.path == cfg.dataset.path for c in changes)


def plan_data_runs(
    store: DataStore,
    cfg: ProjectConfig,
    cursor: str | None,
    *,
    branches: list[str] | None = None,
    replay_history: bool = False,
    already_handled: Callable[[str], bool] = lambda commit_id: False,
    limit: int = 100,
) -> DataRunPlan:
    """Runs to request for new commits on the project's data branch(es)."""
    repo = cfg.dataset.repository
    if not store.repository_exists(repo):
        return DataRunPlan(
            [], cursor or "{}", skip_reason=f"data repository '{repo}' does not exist yet; "
            "create it with `ml-platform data commit`"
        )
    state = parse_cursor(cursor)
    runs: list[DataRun] = []
    events: list[str] = []
    for branch in branches or [cfg.dataset.branch]:
        try:
            head = store.branch_head(repo, branch)
        except NotFoundError:
            events.append(f"branch '{branch}' of '{repo}' does not exist (yet)")
            continue
        new, event = _new_commits(store, repo, branch, state.get(branch), head, replay_history, limit)
        reset_from = state.get(branch) if event else None
        if event:
            events.append(event)
        runs += [
            DataRun(c, branch, reset_from)
            for c in new
            if touches_dataset(store, cfg, c) and not already_handled(c.id)
        ]
        state[branch] = head
    return DataRunPlan(runs, json.dumps(state, sort_keys=True), events)


def _new_commits(
    store: DataStore, repo: str, branch: str, since: str | None, head: str, replay: bool, limit: int
) -> tuple[list[Commit], str | None]:
    if since == head:
        return [], None
    if since is None and not replay:
        return [store.get_commit(repo, head)], None
    try:
        return list(iter_new_commits(store, repo, branch, since, limit=limit)), None
    except LookupError as e:
        # Reset/force-push: report it and carry on from the new head (one run for it).
        return [store.get_commit(repo, head)], f"branch '{branch}' was reset or force-pushed: {e}"
