"""The platform's model registry: MLflow tracking + registry behind one small class.

Everything goes through an ``MlflowClient`` bound to this instance's URIs, so two registries in
one process never see each other's settings. Two mlflow calls read the *global* tracking URI
anyway: ``mlflow.sklearn.log_model`` (it builds its own client) and the SQL registry store's
``create_model_version`` (it resolves ``models:/m-...`` with a default client). For those calls
:func:`~ml_platform._mlflow_support.global_tracking_uri` swaps our URI in and restores the old one
(and the ``MLFLOW_TRACKING_URI`` variable mlflow mirrors it into), under a lock. Code using
mlflow's fluent API from another thread at that very moment would see our URI.

Every registered version carries a sha256 digest of its artifact directory (version tag
``ml_platform.digest``, the same scheme the artifact gate and the model server use); loading
re-computes it first and refuses a model whose files changed.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow.entities import LoggedModelStatus, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import (
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.pyfunc import PyFuncModel

from ml_platform._mlflow_support import (
    SKOPS_TRUSTED_TYPES,
    as_uri,
    dir_size,
    file_uri_path,
    global_tracking_uri,
    model_input_example,
    pinned_requirements,
)
from ml_platform.config import ProjectConfig
from ml_platform.errors import MLPlatformError, TrackingError
from ml_platform.serving.digest import directory_digest
from ml_platform.training import TrainedModel

CHALLENGER = "challenger"
MODEL_NAME = "model"
DIGEST_TAG = "ml_platform.digest"
DATA_COMMIT_TAG = "ml_platform.data_commit"
CODE_SHA_TAG = "ml_platform.code_sha"
RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

_MISSING = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
_EXISTS = ErrorCode.Name(RESOURCE_ALREADY_EXISTS)


@dataclass(frozen=True)
class ModelRef:
    """One registered model version and where its verified files are."""

    name: str
    version: int
    run_id: str
    model_uri: str  # models:/<name>/<version>
    digest: str | None  # None only for versions registered outside the platform
    artifact_path: Path
    size_bytes: int
    data_commit: str | None = None
    code_sha: str | None = None


class ModelRegistry:
    """MLflow runs, models, versions, aliases and tags for the platform's model projects."""

    def __init__(self, tracking_uri: str, artifact_root: str | Path, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = as_uri(artifact_root)
        # Explicit registry URI: left unset, mlflow would prefer a process-global one.
        self.registry_uri = registry_uri or tracking_uri

    @cached_property
    def _client(self) -> mlflow.MlflowClient:
        # Created on first use: for SQLite, mlflow creates and migrates the schema right here
        # (seconds on a busy disk); a constructor, e.g. one called by Definitions, must not.
        try:
            return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        except MlflowException as e:
            raise TrackingError(
                f"cannot open the MLflow store {self.tracking_uri}: {e}; check the URI and that "
                "the store is reachable and writable"
            ) from e

    def __repr__(self) -> str:
        return f"ModelRegistry(tracking_uri={self.tracking_uri!r}, artifact_root={self.artifact_root!r})"

    # -- experiments and runs -------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """The id of experiment ``name``, created with its artifacts under the artifact root."""
        try:
            found = self._client.get_experiment_by_name(name)
            if found is None:
                return self._client.create_experiment(name, artifact_location=f"{self.artifact_root}/{name}")
        except MlflowException as e:
            raise TrackingError(
                f"cannot get or create experiment '{name}' at {self.tracking_uri}: {e}"
            ) from e
        if found.lifecycle_stage != "active":
            raise TrackingError(
                f"experiment '{name}' (id {found.experiment_id}) is deleted; restore it "
                "(mlflow experiments restore) or permanently delete it, then retry"
            )
        return str(found.experiment_id)

    def end_run(self, run_id: str, status: RunStatus = "FINISHED") -> None:
        try:
            self._client.set_terminated(run_id, status)
        except MlflowException as e:
            raise TrackingError(f"cannot end run {run_id} as {status}: {e}") from e

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        try:
            self._client.log_batch(run_id, metrics=batch)
        except MlflowException as e:
            raise TrackingError(f"cannot log metrics {sorted(metrics)} to run {run_id}: {e}") from e

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Attach a file or a whole directory to run ``run_id``."""
        local = Path(path)
        try:
            if local.is_dir():
                self._client.log_artifacts(run_id, str(local), artifact_path)
            else:
                self._client.log_artifact(run_id, str(local), artifact_path)
        except (MlflowException, OSError) as e:
            raise TrackingError(f"cannot log artifact '{local}' to run {run_id}: {e}") from e

    # -- candidates -----------------------------------------------------------------------------

    def log_candidate(
        self,
        cfg: ProjectConfig,
        trained: TrainedModel,
        metrics: Mapping[str, float] | None = None,
        *,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        input_example: pd.DataFrame,
        data_commit: str,
        code_sha: str,
    ) -> ModelRef:
        """Log a run and the model, register a new version of ``cfg.name`` and make it challenger.

        The run always ends (FINISHED, or FAILED when anything raised), and the alias moves only
        after the version and its digest are recorded.
        """
        experiment_id = self.ensure_experiment(cfg.name)
        run_tags = {
            **tags,
            "project": cfg.name,
            "data_commit": data_commit,
            "code_sha": code_sha,
            "mlflow.source.git.commit": code_sha,  # shown as the source version in the MLflow UI
        }
        run_id = self._create_run(experiment_id, f"{cfg.name}-{data_commit[:12]}", run_tags)
        status: RunStatus = "FAILED"
        try:
            self._log_run_data(run_id, trained, metrics or {}, params)
            ref = self._log_and_register(
                cfg,
                trained,
                experiment_id,
                run_id,
                input_example,
                data_commit=data_commit,
                code_sha=code_sha,
            )
            self.set_alias(cfg.name, CHALLENGER, ref.version)
            status = "FINISHED"
            return ref
        finally:
            self.end_run(run_id, status)

    def _create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
        try:
            run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        except MlflowException as e:
            raise TrackingError(f"cannot create a run in experiment {experiment_id}: {e}") from e
        return str(run.info.run_id)

    def _log_run_data(
        self,
        run_id: str,
        trained: TrainedModel,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
    ) -> None:
        provenance = {"train_rows": trained.train_rows, "train_seconds": trained.train_seconds}
        if trained.holdout_rows is not None:
            provenance["holdout_rows"] = trained.holdout_rows
        now = int(time.time() * 1000)
        batch_metrics = [Metric(k, float(v), now, 0) for k, v in {**provenance, **metrics}.items()]
        batch_params = [
            Param(k, str(v)) for k, v in {**params, "features": ",".join(trained.features)}.items()
        ]
        try:
            self._client.log_batch(
                run_id,
                metrics=batch_metrics,
                params=batch_params,
                tags=[RunTag("estimator", trained.estimator)],
            )
        except MlflowException as e:
            raise TrackingError(f"cannot log params/metrics to run {run_id}: {e}") from e

    def _log_and_register(
        self,
        cfg: ProjectConfig,
        trained: TrainedModel,
        experiment_id: str,
        run_id: str,
        input_example: pd.DataFrame,
        *,
        data_commit: str,
        code_sha: str,
    ) -> ModelRef:
        example = model_input_example(input_example, cfg, trained.features)
        model_dir = self._log_model(trained, experiment_id, run_id, example)
        digest = self._digest(model_dir.path)
        version_tags = {DIGEST_TAG: digest, DATA_COMMIT_TAG: data_commit, CODE_SHA_TAG: code_sha}
        version = self._register(cfg.name, model_dir.model_id, run_id, version_tags)
        return ModelRef(
            name=cfg.name,
            version=version,
            run_id=run_id,
            model_uri=f"models:/{cfg.name}/{version}",
            digest=digest,
            artifact_path=model_dir.path,
            size_bytes=dir_size(model_dir.path),
            data_commit=data_commit,
            code_sha=code_sha,
        )

    def _log_model(
        self, trained: TrainedModel, experiment_id: str, run_id: str, example: pd.DataFrame
    ) -> _LoggedDir:
        """Write the sklearn model as an MLflow LoggedModel of ``run_id``; its local directory."""
        with warnings.catch_warnings():
            # The "integer columns cannot hold missing values" hint: model_input_example already
            # turned every nullable int feature into float, so the remaining ints are never null.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            signature = infer_signature(example, trained.pipeline.predict_proba(example))
        try:
            # Created here, not by log_model: left to itself it would pick the fluent "active"
            # experiment (default "0"), not the run's.
            logged = self._client.create_logged_model(
                experiment_id, name=MODEL_NAME, source_run_id=run_id, model_type="sklearn"
            )
        except MlflowException as e:
            raise TrackingError(f"cannot create a logged model for run {run_id}: {e}") from e
        status = LoggedModelStatus.FAILED
        try:
            self._write_sklearn_model(trained, logged.model_id, run_id, signature, example)
            status = LoggedModelStatus.READY
        finally:
            self._finalize_logged_model(logged.model_id, status)
        return _LoggedDir(logged.model_id, self._local_dir(logged.artifact_location))

    def _write_sklearn_model(
        self,
        trained: TrainedModel,
        model_id: str,
        run_id: str,
        signature: ModelSignature,
        example: pd.DataFrame,
    ) -> None:
        try:
            with global_tracking_uri(self.tracking_uri):
                mlflow.sklearn.log_model(
                    trained.pipeline,
                    name=MODEL_NAME,
                    model_id=model_id,
                    run_id=run_id,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pinned_requirements(),
                    # pyfunc answers with probabilities, matching the signature and the server
                    pyfunc_predict_fn="predict_proba",
                    skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
                )
        except (MlflowException, OSError) as e:
            raise TrackingError(f"cannot log the model of run {run_id}: {e}") from e

    def _finalize_logged_model(self, model_id: str, status: LoggedModelStatus) -> None:
        try:
            self._client.finalize_logged_model(model_id, status)
        except MlflowException as e:
            raise TrackingError(f"cannot mark logged model {model_id} {status}: {e}") from e

    def _register(self, name: str, model_id: str, run_id: str, tags: Mapping[str, str]) -> int:
        try:
            self._ensure_registered_model(name)
            # The SQL registry store resolves a models:/ source with a default MlflowClient(),
            # i.e. through the global tracking URI (an mlflow TODO), hence the swap.
            with global_tracking_uri(self.tracking_uri):
                mv = self._client.create_model_version(
                    name,
                    source=f"models:/{model_id}",
                    run_id=run_id,
                    tags=dict(tags),
                    model_id=model_id,
                )
        except MlflowException as e:
            raise TrackingError(f"cannot register model {model_id} of run {run_id} as '{name}': {e}") from e
        return int(mv.version)

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.get_registered_model(name)
            return
        except MlflowException as e:
            if e.error_code != _MISSING:
                raise
        try:
            self._client.create_registered_model(name)
        except MlflowException as e:
            if e.error_code != _EXISTS:  # another process registered it first: fine
                raise

    # -- versions, aliases, tags ----------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> ModelRef | None:
        """The version ``alias`` points at, or None when the model or alias does not exist."""
        # Read through the registered model: stores disagree on the error code of a missing alias
        # (the SQL store says INVALID_PARAMETER_VALUE), and a message is no contract.
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as e:
            if e.error_code == _MISSING:
                return None
            raise TrackingError(f"cannot read registered model '{name}': {e}") from e
        version = model.aliases.get(alias)
        return None if version is None else self.get_version(name, int(version))

    def get_version(self, name: str, version: int) -> ModelRef:
        try:
            mv = self._client.get_model_version(name, str(version))
        except MlflowException as e:
            raise TrackingError(f"cannot read version {version} of model '{name}': {e}") from e
        return self._ref(name, version, str(mv.run_id), dict(mv.tags))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        try:
            self._client.set_registered_model_alias(name, alias, str(version))
        except MlflowException as e:
            raise TrackingError(f"cannot point alias '{alias}' of '{name}' at version {version}: {e}") from e

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        try:
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), key, str(value))
        except MlflowException as e:
            raise TrackingError(f"cannot tag version {version} of '{name}': {e}") from e

    def get_version_tags(self, name: str, version: int) -> dict[str, str]:
        try:
            return dict(self._client.get_model_version(name, str(version)).tags)
        except MlflowException as e:
            raise TrackingError(f"cannot read tags of version {version} of '{name}': {e}") from e

    def _ref(self, name: str, version: int, run_id: str, tags: Mapping[str, str]) -> ModelRef:
        path = self._version_dir(name, version)
        return ModelRef(
            name=name,
            version=version,
            run_id=run_id,
            model_uri=f"models:/{name}/{version}",
            digest=tags.get(DIGEST_TAG),
            artifact_path=path,
            size_bytes=dir_size(path),
            data_commit=tags.get(DATA_COMMIT_TAG),
            code_sha=tags.get(CODE_SHA_TAG),
        )

    # -- artifacts and loading ------------------------------------------------------------------

    def load_model(self, ref: ModelRef) -> PyFuncModel:
        """The pyfunc model of ``ref`` (predicts P(class) columns), after checking its digest."""
        path = self.verified_dir(ref)
        try:
            return mlflow.pyfunc.load_model(str(path))
        except MlflowException as e:
            raise TrackingError(f"cannot load {ref.model_uri} from {path}: {e}") from e

    def load_sklearn(self, ref: ModelRef) -> Any:
        """The fitted sklearn pipeline of ``ref``, after checking its digest."""
        path = self.verified_dir(ref)
        try:
            return mlflow.sklearn.load_model(str(path))
        except MlflowException as e:
            raise TrackingError(f"cannot load {ref.model_uri} from {path}: {e}") from e

    def verified_dir(self, ref: ModelRef) -> Path:
        """The model's local directory once its files match the digest the registry recorded."""
        recorded = self.get_version_tags(ref.name, ref.version).get(DIGEST_TAG)
        if recorded is None:
            raise TrackingError(
                f"{ref.model_uri} has no '{DIGEST_TAG}' tag, so its files cannot be verified; "
                "register models through ModelRegistry.log_candidate"
            )
        if ref.digest is not None and ref.digest != recorded:
            raise TrackingError(
                f"{ref.model_uri}: the reference's digest {ref.digest[:12]} differs from the "
                f"registry's {recorded[:12]}; fetch a fresh reference (get_alias) and retry"
            )
        path = ref.artifact_path if ref.artifact_path.is_dir() else self._version_dir(ref.name, ref.version)
        actual = self._digest(path)
        if actual != recorded:
            raise TrackingError(
                f"{ref.model_uri}: files in {path} hash to {actual[:12]}, but {recorded[:12]} was "
                "recorded at registration; the artifact was modified or corrupted: retrain the "
                "model or restore its files"
            )
        return path

    def _version_dir(self, name: str, version: int) -> Path:
        try:
            uri = self._client.get_model_version_download_uri(name, str(version))
        except MlflowException as e:
            raise TrackingError(f"cannot locate the files of version {version} of '{name}': {e}") from e
        return self._local_dir(uri)

    def _local_dir(self, artifact_uri: str) -> Path:
        """A local directory with ``artifact_uri``'s files: the path of a file URI, else a copy."""
        local = file_uri_path(artifact_uri)
        if local is not None:
            return local
        dst = tempfile.mkdtemp(prefix="ml-platform-model-")
        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=dst, tracking_uri=self.tracking_uri
                )
            )
        except (MlflowException, OSError) as e:
            raise TrackingError(f"cannot download model files from {artifact_uri}: {e}") from e

    @staticmethod
    def _digest(path: Path) -> str:
        try:
            return directory_digest(path)
        except (MLPlatformError, OSError) as e:
            raise TrackingError(f"cannot compute the digest of model directory {path}: {e}") from e


@dataclass(frozen=True)
class _LoggedDir:
    model_id: str
    path: Path
