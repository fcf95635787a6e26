"""Run tags that pin a run's inputs. Sensors set them; every asset of the run reads only them."""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "ml_platform"
PROJECT = f"{PREFIX}/project"
DATA_COMMIT = f"{PREFIX}/data_commit"
DATA_BRANCH = f"{PREFIX}/data_branch"
CODE_SHA = f"{PREFIX}/code_sha"
CODE_BRANCH = f"{PREFIX}/code_branch"
SCOPE = f"{PREFIX}/scope"
TRIGGER = f"{PREFIX}/trigger"
DATA_RESET_FROM = f"{PREFIX}/data_reset_from"  # the data branch was reset/force-pushed away from this


def pinned_data_commit(tags: Mapping[str, str]) -> str | None:
    return tags.get(DATA_COMMIT) or None


def pinned_code_sha(tags: Mapping[str, str]) -> str | None:
    return tags.get(CODE_SHA) or None


# Asset tag (not a run tag): the stage of the graph an asset belongs to (ml_platform.scopes).
# Scope jobs select by it, so an asset tagged "staging" runs on main and release/* but never on
# feature/* (definitions.scope_job_selection).
STAGE = f"{PREFIX}/stage"
# Run tag: the scope a run was started for (validate / staging / production).
POOL_MODEL_REGISTRY = "model_registry"


def stage_tags(stage: str) -> dict[str, str]:
    """``tags=`` for an asset of ``stage`` ("ci", "staging" or "production").

    Plain ``str``: Dagster's serializer refuses enum values in tags (a StrEnum breaks the code
    location load in ``dagster dev`` while in-process tests pass)."""
    return {STAGE: str(stage)}


def code_sha_of_run(tags: Mapping[str, str], definitions_sha: str | None) -> str:
    """The code version a materialization was computed by: the sha the run was pinned to (git
    push), else the sha the code server runs from (data-commit and UI runs)."""
    return pinned_code_sha(tags) or definitions_sha or "unknown"


def registry_pool(project: str) -> str:
    """Concurrency pool of the steps that write a project's model registry entries and aliases."""
    return f"{project}_{POOL_MODEL_REGISTRY}"
