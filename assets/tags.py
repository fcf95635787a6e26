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


def pinned_data_commit(tags: Mapping[str, str]) -> str | None:
    return tags.get(DATA_COMMIT) or None


def pinned_code_sha(tags: Mapping[str, str]) -> str | None:
    return tags.get(CODE_SHA) or None
