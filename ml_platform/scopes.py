"""What a branch scope materializes: the stages of the asset graph each scope runs through.

Every asset belongs to one stage. ``ci`` is everything up to and including the decision
(validate, smoke-train, evaluate, report); ``staging`` adds the image and the staging deployment;
``production`` adds the production rollout; ``operate`` (approvals, serving monitor) is run by
no scope, only by its own job. A scope runs its own stage and every stage before it
(ARCHITECTURE.md §2): feature/* -> ci; main -> ci + staging; release/* or a tag -> all three.
"""

from __future__ import annotations

from enum import StrEnum

from ml_platform.config import BranchScope


class Stage(StrEnum):
    CI = "ci"
    STAGING = "staging"
    PRODUCTION = "production"
    # Assets no scope runs: started by an operator (rollout_approval) or by their own sensor
    # (serving_monitor), each through its own job.
    OPERATE = "operate"


_ORDER: tuple[Stage, ...] = (Stage.CI, Stage.STAGING, Stage.PRODUCTION)
_LAST_STAGE: dict[BranchScope, Stage] = {
    BranchScope.VALIDATE: Stage.CI,
    BranchScope.STAGING: Stage.STAGING,
    BranchScope.PRODUCTION: Stage.PRODUCTION,
}
# Where the CD assets of ARCHITECTURE.md §1 belong, for the engineers adding them.
STAGE_OF_CD_ASSET: dict[str, Stage] = {
    "model_image": Stage.STAGING,
    "staging_deployment": Stage.STAGING,
    "production_rollout": Stage.PRODUCTION,
}


def stages_for(scope: BranchScope) -> tuple[Stage, ...]:
    """The stages a run of ``scope`` materializes, in order."""
    last = _LAST_STAGE[scope]
    return _ORDER[: _ORDER.index(last) + 1]
