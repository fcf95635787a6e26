"""Progressive delivery of a model: canary and blue/green rollouts (ARCHITECTURE.md §5).

* :mod:`.model` – phases, the persisted :class:`RolloutState`, metrics, assessments, intents;
* :func:`assess` – the one pure canary analysis (stable vs canary vs policy);
* :func:`decide` – the one pure transition function (state + evidence -> state + intents);
* :class:`RolloutStore` – JSON files, atomic writes, a lock per project, one live rollout each;
* :class:`Reconciler` – applies decisions to a :class:`TrafficController`; safe to repeat.
"""

from ml_platform.rollout._codec import state_to_dict
from ml_platform.rollout.analysis import assess
from ml_platform.rollout.machine import (
    LEGAL_TRANSITIONS,
    abort,
    decide,
    needs_analysis,
    pause,
    record_approval,
    resume,
    transition,
    weight_plan,
)
from ml_platform.rollout.model import (
    TERMINAL_PHASES,
    Approval,
    Assessment,
    Check,
    Intent,
    Message,
    Notify,
    Phase,
    PromoteCandidate,
    RequestApproval,
    RollbackToStable,
    RolloutState,
    SetWeights,
    Transition,
    VariantMetrics,
)
from ml_platform.rollout.reconcile import MetricsSource, Notifier, Reconciler, TrafficController
from ml_platform.rollout.store import Plan, RolloutStore

__all__ = [
    "LEGAL_TRANSITIONS",
    "TERMINAL_PHASES",
    "Approval",
    "Assessment",
    "Check",
    "Intent",
    "Message",
    "MetricsSource",
    "Notifier",
    "Notify",
    "Phase",
    "Plan",
    "PromoteCandidate",
    "Reconciler",
    "RequestApproval",
    "RollbackToStable",
    "RolloutState",
    "RolloutStore",
    "SetWeights",
    "TrafficController",
    "Transition",
    "VariantMetrics",
    "abort",
    "assess",
    "decide",
    "needs_analysis",
    "pause",
    "record_approval",
    "resume",
    "state_to_dict",
    "transition",
    "weight_plan",
]
