"""Where model images go and what they are checked against: the Docker engine, the registry,
the base image and the secret values no image may contain.

Nothing is read at import. Empty fields fall back to the environment at run time:
``ML_PLATFORM_REGISTRY`` (e.g. ``127.0.0.1:5000``; empty = build locally, push nothing) and
``ML_PLATFORM_BASE_IMAGE`` (empty = the project's own Debian base image, built once and cached).
Secret *values* are read from the environment variables named in ``secret_env_vars`` only
while an image is scanned; findings name the variable, never the value.
"""

import os
from collections.abc import Mapping

import dagster as dg

from ml_platform.images.base import BASE_IMAGE_ENV

REGISTRY_ENV = "ML_PLATFORM_REGISTRY"
IMAGES_ENV = "ML_PLATFORM_IMAGES"  # auto (default) | on | off: is model_image in the graph?
DEFAULT_SECRET_ENV_VARS = (
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    "ML_PLATFORM_ALERT_WEBHOOK_URL",
    "ML_PLATFORM_HOOK_TOKEN",
    "ML_PLATFORM_ROUTER_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "REGISTRY_PASSWORD",
)


class DeliveryResource(dg.ConfigurableResource):
    """Model images: registry, base image, size budget and the secrets to scan for."""

    registry: str = ""  # '' = $ML_PLATFORM_REGISTRY; still '' = no push
    base_image: str = ""  # '' = $ML_PLATFORM_BASE_IMAGE; still '' = build from Debian packages
    image_size_limit_mb: int = 2500
    secret_env_vars: list[str] = list(DEFAULT_SECRET_ENV_VARS)
    docker_timeout_s: int = 600

    def registry_address(self) -> str | None:
        return (self.registry or os.environ.get(REGISTRY_ENV, "")).strip() or None

    def base_image_ref(self) -> str:
        return (self.base_image or os.environ.get(BASE_IMAGE_ENV, "")).strip()

    def secret_values(self) -> Mapping[str, str]:
        """``{"$NAME": value}`` for every configured secret variable that is set."""
        return {f"${n}": os.environ[n] for n in self.secret_env_vars if os.environ.get(n)}

    def docker_client(self):  # -> docker.DockerClient (docker is imported only when used)
        import docker

        return docker.from_env(timeout=self.docker_timeout_s)
