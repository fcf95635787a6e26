"""Container images for model serving: the project's base image, model images and their gates.

    from ml_platform.images import ensure_base_image, build_model_image
    base = ensure_base_image(docker.from_env())            # cached by requirement-set hash
    image = build_model_image(client, ref, project="churn", git_sha=sha, data_commit=commit,
                              base_image=base, registry="127.0.0.1:5000")
    check_image_size(client, image, limit_bytes=...)      # Verdict "image_size"
    check_container_smoke(client, image, model_dir=ref.artifact_path, model_digest=ref.digest,
                          sample=records)                  # Verdict "container_smoke"
    check_no_secrets(client, image, secrets=secrets_from_env(["API_TOKEN"]))
                                                           # Verdict "no_secrets_in_image"

Everything here talks to a Docker engine through the docker SDK; ``client`` is a
``docker.DockerClient`` (``docker.from_env()``).
"""

from ml_platform.images.base import (
    BASE_IMAGE_ENV,
    BaseImage,
    base_image_tag,
    ensure_base_image,
    ensure_os_image,
    serving_requirements,
)
from ml_platform.images.build import ImageRef, build_model_image, image_reference
from ml_platform.images.checks import (
    check_container_smoke,
    check_image_size,
    check_no_secrets,
    in_process_predictions,
)
from ml_platform.images.secrets import SecretFinding, scan_image_for_secrets, secrets_from_env

__all__ = [
    "BASE_IMAGE_ENV",
    "BaseImage",
    "ImageRef",
    "SecretFinding",
    "base_image_tag",
    "build_model_image",
    "check_container_smoke",
    "check_image_size",
    "check_no_secrets",
    "ensure_base_image",
    "ensure_os_image",
    "image_reference",
    "in_process_predictions",
    "scan_image_for_secrets",
    "secrets_from_env",
    "serving_requirements",
]
