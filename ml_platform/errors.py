"""The one exception tree of ml_platform.

Every error the platform raises on purpose is a subclass of :class:`MLPlatformError`. Messages
say what failed, what was expected, what was seen and what to do, so they can be shown to a user
as they are (CLI, Dagster UI, HTTP 4xx bodies).

    MLPlatformError
    ├── ConfigError                 a project/config file is invalid (file, field, reason)
    ├── DataStoreError              data versioning backend (embedded store, lakeFS)
    │   ├── NotFoundError           repository, branch, commit or path does not exist
    │   ├── ConflictError           a branch moved under us / already exists
    │   ├── CorruptStoreError       on-disk content does not match its hash
    │   ├── AuthError               bad credentials
    │   └── BackendUnavailableError timeouts, 5xx, connection refused (after retries)
    ├── CodeSourceError             git remote / repository problems
    ├── ValidationFailed            data did not pass a gate (carries the verdict)
    ├── TrackingError               MLflow tracking/registry problems
    ├── GateRefusal                 a downstream step refused because an upstream gate failed
    ├── ImageBuildError             container image build/push/smoke problems
    ├── DeploymentError             deployer/router problems
    ├── RolloutError                illegal rollout transition or policy problem
    └── NotificationError           a notification could not be delivered
"""

from __future__ import annotations


class MLPlatformError(Exception):
    """Base class of every error ml_platform raises on purpose."""


class ConfigError(MLPlatformError):
    """A configuration file or value is invalid."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        where = ""
        if source:
            where += f"{source}: "
        if field:
            where += f"field '{field}': "
        super().__init__(f"{where}{message}")


class DataStoreError(MLPlatformError):
    """A data versioning backend failed."""


class NotFoundError(DataStoreError):
    """A repository, branch, commit or path does not exist."""


class ConflictError(DataStoreError):
    """The operation conflicts with the current state (e.g. the branch moved, already exists)."""


class CorruptStoreError(DataStoreError):
    """Stored content does not match its recorded hash: the store is damaged."""


class AuthError(DataStoreError):
    """The backend rejected the credentials."""


class BackendUnavailableError(DataStoreError):
    """The backend could not be reached or kept failing after retries."""


class CodeSourceError(MLPlatformError):
    """A git remote or repository could not be read."""


class ValidationFailed(MLPlatformError):
    """Data or a model did not pass a gate."""


class TrackingError(MLPlatformError):
    """MLflow tracking or the model registry failed."""


class GateRefusal(MLPlatformError):
    """A step refused to run because gates it depends on did not pass."""


class ImageBuildError(MLPlatformError):
    """Building, pushing or smoke-testing a container image failed."""


class DeploymentError(MLPlatformError):
    """A deployer or the router failed."""


class RolloutError(MLPlatformError):
    """An illegal rollout transition or an invalid rollout policy."""


class NotificationError(MLPlatformError):
    """A notification could not be delivered (the message never contains a webhook URL)."""
