"""Model gates: each takes plain inputs (scores, frames, labels, a config spec) and returns a
:class:`~ml_platform.gates.Verdict`; :func:`decide` turns the verdicts into PROMOTE/HOLD/REJECT.

Nothing here imports the training or evaluation modules, so each gate is usable (and tested) on
any fitted estimator or ``predict_proba``-like function.
"""

from ml_platform.model_gates.artifact import (
    artifact_size,
    dependencies_pinned,
    directory_digest,
    round_trip,
)
from ml_platform.model_gates.decision import (
    Decision,
    DecisionResult,
    decide,
    render_gate_tree,
    to_junit_xml,
)
from ml_platform.model_gates.explainability import explainability, write_importance_report
from ml_platform.model_gates.fairness import fairness
from ml_platform.model_gates.latency import latency_budget
from ml_platform.model_gates.regression import no_regression_vs_champion
from ml_platform.model_gates.reproducibility import check_reproducible, reproducible
from ml_platform.model_gates.smoke import smoke_train

__all__ = [
    "Decision",
    "DecisionResult",
    "artifact_size",
    "check_reproducible",
    "decide",
    "dependencies_pinned",
    "directory_digest",
    "explainability",
    "fairness",
    "latency_budget",
    "no_regression_vs_champion",
    "render_gate_tree",
    "reproducible",
    "round_trip",
    "smoke_train",
    "to_junit_xml",
    "write_importance_report",
]
