"""Model project configuration: one YAML/TOML file per model project.

A project is configuration, not code: the file names the dataset, target, features and their
schema, sensitive attributes, metric thresholds, drift settings, gate policy, rollout steps and
approval policy. :func:`load_project` validates a file and raises :class:`ConfigError` naming the
file, the field and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ml_platform.errors import ConfigError

_NAME = r"^[a-z][a-z0-9_]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class GateMode(StrEnum):
    BLOCKING = "blocking"  # a failure stops downstream and rejects the candidate
    WARNING = "warning"  # a failure is reported; the candidate may still be promoted (HOLD)
    OFF = "off"


FeatureType = Literal["int", "float", "category", "bool", "str"]


class FeatureSpec(_Strict):
    """One input column and its constraints (turned into a Pandera column)."""

    name: str = Field(min_length=1)
    dtype: FeatureType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check_bounds(self) -> FeatureSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min/max only apply to numeric features, not dtype '{self.dtype}'")
        if self.allowed is not None and len(self.allowed) == 0:
            raise ValueError("allowed must list at least one value (or be omitted)")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int", "float")


class BranchScope(StrEnum):
    VALIDATE = "validate"  # feature/*: validate, smoke-train, evaluate, report
    STAGING = "staging"  # main: through staging_deployment
    PRODUCTION = "production"  # release/* or tags: through production_rollout


class DatasetSpec(_Strict):
    """Where the project's data lives in the data store (embedded store or lakeFS)."""

    repository: str = Field(min_length=1)
    branch: str = "main"
    path: str = Field(min_length=1, description="file inside the repository (.csv or .parquet)")
    # How far a new commit on ``branch`` goes (data_commit_sensor): validate = data CI, training
    # and the decision only; staging adds image + staging deployment; production goes on to
    # the production rollout when the decision is PROMOTE.
    on_commit: BranchScope = BranchScope.VALIDATE

    @field_validator("path")
    @classmethod
    def _check_format(cls, v: str) -> str:
        if not v.endswith((".csv", ".parquet")):
            raise ValueError(f"'{v}' must end with .csv or .parquet")
        return v.lstrip("/")


class MetricThresholdSpec(_Strict):
    """An absolute bound on a holdout metric, e.g. roc_auc >= 0.75."""

    metric: str
    threshold: float
    direction: Direction = Direction.HIGHER_IS_BETTER


class DriftSpec(_Strict):
    """Data drift gate against the reference (the champion's training data or first commit)."""

    method: Literal["wasserstein", "psi", "ks", "jensenshannon"] = "wasserstein"
    categorical_method: Literal["jensenshannon", "psi", "chisquare"] = "jensenshannon"
    column_threshold: float = Field(0.1, gt=0)
    drift_share: float = Field(0.5, gt=0, le=1)
    max_sample_rows: int = Field(50_000, ge=100)
    seed: int = 0
    mode: GateMode = GateMode.BLOCKING
    columns: list[str] | None = None  # default: every feature


class ModelSpec(_Strict):
    estimator: Literal[
        "logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"
    ] = "hist_gradient_boosting"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    use_sensitive_features: bool = False


class RegressionSpec(_Strict):
    """No-regression gate vs the champion: the candidate may not be worse by more than tolerance."""

    metric: str = "roc_auc"
    tolerance: float = Field(0.02, ge=0)
    direction: Direction = Direction.HIGHER_IS_BETTER
    bootstrap_samples: int = Field(200, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)


class FairnessSpec(_Strict):
    max_demographic_parity_difference: float | None = 0.2
    max_equalized_odds_difference: float | None = 0.25
    min_group_size: int = 30


class ArtifactSpec(_Strict):
    max_size_mb: float = Field(50.0, gt=0)
    round_trip_sample_rows: int = Field(200, ge=1)


class LatencySpec(_Strict):
    single_row_p95_ms: float = Field(50.0, gt=0)
    batch_rows: int = Field(1000, ge=1)
    batch_p95_ms: float = Field(500.0, gt=0)
    repeats: int = Field(50, ge=5)


class ExplainabilitySpec(_Strict):
    top_k: int = Field(3, ge=1)
    forbidden_features: list[str] = Field(default_factory=list)
    n_repeats: int = Field(5, ge=1)
    max_rows: int = Field(2000, ge=50)


class ReproducibilitySpec(_Strict):
    tolerance: float = Field(1e-9, ge=0)


class SmokeTrainSpec(_Strict):
    sample_rows: int = Field(500, ge=50)
    metric: str = "roc_auc"
    min_margin_over_baseline: float = Field(0.02, ge=0)


GATE_NAMES: tuple[str, ...] = (
    "schema_valid",
    "no_drift",
    "row_count",
    "smoke_train",
    "reproducible",
    "artifact_size",
    "round_trip",
    "dependencies_pinned",
    "metric_thresholds",
    "no_regression_vs_champion",
    "fairness",
    "latency_budget",
    "explainability",
)

_DEFAULT_MODES: dict[str, GateMode] = {
    "schema_valid": GateMode.BLOCKING,
    "no_drift": GateMode.BLOCKING,
    "row_count": GateMode.BLOCKING,
    "smoke_train": GateMode.BLOCKING,
    "reproducible": GateMode.BLOCKING,
    "artifact_size": GateMode.BLOCKING,
    "round_trip": GateMode.BLOCKING,
    "dependencies_pinned": GateMode.WARNING,
    "metric_thresholds": GateMode.BLOCKING,
    "no_regression_vs_champion": GateMode.BLOCKING,
    "fairness": GateMode.WARNING,
    "latency_budget": GateMode.WARNING,
    "explainability": GateMode.WARNING,
}


class GatesSpec(_Strict):
    """Per-gate mode (blocking / warning / off) plus each gate's parameters."""

    modes: dict[str, GateMode] = Field(default_factory=dict)
    min_rows: int = Field(200, ge=1)
    regression: RegressionSpec = RegressionSpec()
    fairness: FairnessSpec = FairnessSpec()
    artifact: ArtifactSpec = ArtifactSpec()
    latency: LatencySpec = LatencySpec()
    explainability: ExplainabilitySpec = ExplainabilitySpec()
    reproducibility: ReproducibilitySpec = ReproducibilitySpec()
    smoke_train: SmokeTrainSpec = SmokeTrainSpec()

    @field_validator("modes")
    @classmethod
    def _known_gates(cls, v: dict[str, GateMode]) -> dict[str, GateMode]:
        unknown = sorted(set(v) - set(GATE_NAMES))
        if unknown:
            raise ValueError(f"unknown gate(s) {unknown}; known gates: {list(GATE_NAMES)}")
        return v

    def mode(self, gate: str) -> GateMode:
        if gate not in GATE_NAMES:
            raise KeyError(gate)
        return self.modes.get(gate, _DEFAULT_MODES[gate])


class AnalysisSpec(_Strict):
    """Canary analysis: canary vs stable, each metric with a limit and a minimum sample."""

    max_error_rate: float = Field(0.02, ge=0, le=1)
    max_p95_latency_ms: float = Field(250.0, gt=0)
    max_prediction_shift: float = Field(0.15, ge=0)  # |mean score canary - stable|
    min_live_accuracy: float | None = None
    min_requests: int = Field(50, ge=1)
    min_feedback: int = Field(30, ge=1)


class RolloutSpec(_Strict):
    strategy: Literal["canary", "blue_green"] = "canary"
    steps: list[int] = Field(default_factory=lambda: [10, 30, 100])
    analysis: AnalysisSpec = AnalysisSpec()
    approval: Literal["none", "before_full"] = "none"
    step_min_seconds: float = Field(0.0, ge=0)

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, v: list[int]) -> list[int]:
        if not v or v[-1] != 100:
            raise ValueError(f"canary steps must end at 100 (got {v})")
        if any(not 0 < s <= 100 for s in v) or v != sorted(set(v)):
            raise ValueError(f"canary steps must be strictly increasing percentages in (0, 100], got {v}")
        return v


class BranchRule(_Strict):
    pattern: str  # fnmatch pattern on the branch name, e.g. "feature/*"
    scope: BranchScope


class CodeSpec(_Strict):
    """Where the project's code lives (for git_push_sensor)."""

    remote: str | None = None  # any URL git accepts; None = no push sensor
    branches: list[BranchRule] = Field(
        default_factory=lambda: [
            BranchRule(pattern="feature/*", scope=BranchScope.VALIDATE),
            BranchRule(pattern="main", scope=BranchScope.STAGING),
            BranchRule(pattern="release/*", scope=BranchScope.PRODUCTION),
        ]
    )


class ProjectConfig(_Strict):
    """A model project: everything the platform needs to build its asset graph."""

    name: Annotated[str, Field(pattern=_NAME)]
    description: str = ""
    dataset: DatasetSpec
    target: str = Field(min_length=1)
    positive_label: str | int | bool = 1
    features: list[FeatureSpec] = Field(min_length=1)
    sensitive_attributes: list[str] = Field(default_factory=list)
    model: ModelSpec = ModelSpec()
    thresholds: list[MetricThresholdSpec] = Field(default_factory=list)
    drift: DriftSpec = DriftSpec()
    gates: GatesSpec = GatesSpec()
    rollout: RolloutSpec = RolloutSpec()
    code: CodeSpec = CodeSpec()
    schema_class: str | None = Field(
        None, description="import path 'pkg.module:Class' of a custom Pandera DataFrameModel"
    )

    @model_validator(mode="after")
    def _cross_check(self) -> ProjectConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate feature name(s) {dupes}")
        if self.target in names:
            raise ValueError(f"target '{self.target}' must not also be listed as a feature")
        missing = [s for s in self.sensitive_attributes if s not in names]
        if missing:
            raise ValueError(
                f"sensitive_attributes {missing} are not features; add them to 'features' "
                "(with use_sensitive_features: false they are kept out of training)"
            )
        if self.drift.columns:
            unknown = [c for c in self.drift.columns if c not in names]
            if unknown:
                raise ValueError(f"drift.columns {unknown} are not features")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def training_features(self) -> list[str]:
        """Features the model sees (sensitive attributes excluded unless configured)."""
        if self.model.use_sensitive_features:
            return self.feature_names
        return [f for f in self.feature_names if f not in self.sensitive_attributes]

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


def _format_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_project(data: Any, *, source: str = "<config>") -> ProjectConfig:
    """Validate an already-parsed mapping; errors name the source, field and reason."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top level, got {type(data).__name__}", source=source
        )
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = _format_loc(first["loc"]) or "<root>"
        msg = re.sub(r"^Value error, ", "", first["msg"])
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise ConfigError(f"{msg}{more}", source=source, field=field) from e


def load_project(path: str | Path) -> ProjectConfig:
    """Read and validate one project file (.yaml, .yml or .toml)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("file does not exist", source=str(p))
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError("unsupported extension; use .yaml, .yml or .toml", source=str(p))
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot parse: {e}", source=str(p)) from e
    return parse_project(data, source=str(p))


def load_projects(folder: str | Path) -> list[ProjectConfig]:
    """Every project file in a folder, sorted by name; project names must be unique."""
    d = Path(folder)
    if not d.is_dir():
        raise ConfigError("projects folder does not exist", source=str(d))
    files = sorted(
        p for p in d.iterdir() if p.suffix in (".yaml", ".yml", ".toml") and p.is_file()
    )
    projects = [load_project(p) for p in files]
    seen: dict[str, str] = {}
    for p, f in zip(projects, files, strict=True):
        if p.name in seen:
            raise ConfigError(
                f"project name '{p.name}' is also used by {seen[p.name]}", source=str(f), field="name"
            )
        seen[p.name] = str(f)
    return projects
