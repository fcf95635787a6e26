"""Model images: one registered model version + the serving code on the project's base image.

The image holds the MLflow model directory at ``/model`` (its digest baked in and re-checked by
the server at start), the ``ml_platform`` source at ``/app``, and runs as the non-root ``app``
user. It is meant for host networking (no bridge here; on Kubernetes the pod has its own
network): the server binds ``$HOST:$PORT`` (defaults ``0.0.0.0:8080``), so a local run picks a
free ``PORT`` and ``HOST=127.0.0.1``.

The base image already sets the user, the environment and the entrypoint, so a model image
is two build steps (COPY, one LABEL): with the vfs storage driver every step copies the whole
filesystem (~20 s for this image), so fewer steps is the fastest build.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker

import ml_platform
from ml_platform.errors import ImageBuildError
from ml_platform.images._docker import build, push, split_reference
from ml_platform.images.base import BaseImage
from ml_platform.serving.digest import directory_digest
from ml_platform.tracking import ModelRef

log = logging.getLogger(__name__)

MODEL_DIR = "/model"
APP_DIR = "/app"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_DATA_COMMIT = "mlplatform.data_commit"
LABEL_RUN_ID = "mlplatform.mlflow_run_id"
LABEL_MODEL_VERSION = "mlplatform.model_version"
LABEL_MODEL_DIGEST = "mlplatform.model_digest"
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?")
_SHA = re.compile(r"[0-9a-f]{12,64}")

# Per model, so the image needs no ENV step: the base image sets PATH, PYTHONPATH=/app,
# MODEL_DIR, HOST, PORT, VARIANT, the app user and this script as its ENTRYPOINT.
_ENTRYPOINT = """\
#!/bin/sh
# Serve the model baked into this image; the server re-checks its digest before loading it.
set -eu
: "${{MODEL_DIGEST:={digest}}}" "${{MODEL_VERSION:={version}}}"
exec python -m ml_platform.serving.server --model-dir "$MODEL_DIR" --host "$HOST" \\
  --port "$PORT" --variant "$VARIANT" --expected-digest "$MODEL_DIGEST" \\
  --model-version "$MODEL_VERSION" "$@"
"""

# Two steps only: with the vfs storage driver every step (even LABEL) copies the filesystem.
_DOCKERFILE = """\
FROM {base}
COPY rootfs/ /
LABEL {labels}
"""


@dataclass(frozen=True)
class ImageRef:
    """A built model image; ``digest`` (the registry manifest digest) is set once pushed."""

    reference: str  # repository:tag
    image_id: str  # sha256:... of the local image config
    size_bytes: int
    model_version: int
    model_digest: str
    labels: Mapping[str, str] = field(default_factory=dict)
    digest: str | None = None

    @property
    def repository(self) -> str:
        return split_reference(self.reference)[0]

    @property
    def tag(self) -> str:
        return split_reference(self.reference)[1]

    @property
    def pinned(self) -> str:
        """``repository@sha256:...`` once pushed (what deployments should pull), else the tag."""
        return f"{self.repository}@{self.digest}" if self.digest else self.reference


def image_reference(project: str, version: int, git_sha: str, registry: str | None) -> str:
    """``<registry>/<project>-model:v<version>-<sha12>`` (no registry: a local name).

    A sha from a working tree with uncommitted changes (``<sha>-dirty``, as
    :func:`ml_platform.code_version.current_code_sha` reports it) gives ``...-<sha12>-dirty``:
    the tag never claims a clean revision it was not built from."""
    sha, dirty = (git_sha[: -len("-dirty")], True) if git_sha.endswith("-dirty") else (git_sha, False)
    if not _SHA.fullmatch(sha):
        raise ImageBuildError(f"git_sha must be a hex commit id of 12-64 characters, got "
                              f"'{git_sha}'; run from a git checkout (the image is tagged with "
                              "the code's commit) or pass the sha the run was started for")
    repository = f"{project}-model"
    if registry:
        if not _REGISTRY.fullmatch(registry):
            raise ImageBuildError(f"registry '{registry}' must look like host[:port][/path] with "
                                  "no scheme, e.g. 127.0.0.1:5000 or ghcr.io/acme")
        repository = f"{registry.rstrip('/')}/{repository}"
    return f"{repository}:v{version}-{sha[:12]}{'-dirty' if dirty else ''}"


def build_model_image(
    client: docker.DockerClient,
    ref: ModelRef,
    *,
    project: str,
    git_sha: str,
    data_commit: str,
    base_image: str | BaseImage,
    registry: str | None,
    source: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImageRef:
    """Build the model image of ``ref`` and push it when ``registry`` is given.

    ``source`` is the OCI source label (the project's git URL); it defaults to a URN naming the
    project. Raises ImageBuildError when the model files do not match ``ref.digest``.
    """
    base = base_image.tag if isinstance(base_image, BaseImage) else base_image
    reference = image_reference(project, ref.version, git_sha, registry)
    digest = _verified_digest(ref)
    labels = {
        LABEL_SOURCE: source or f"urn:ml-platform:project:{project}",
        LABEL_REVISION: git_sha,
        LABEL_CREATED: now().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "org.opencontainers.image.title": f"{project}-model",
        "org.opencontainers.image.version": f"v{ref.version}",
        "org.opencontainers.image.base.name": base,
        LABEL_DATA_COMMIT: data_commit,
        LABEL_RUN_ID: ref.run_id,
        LABEL_MODEL_VERSION: str(ref.version),
        LABEL_MODEL_DIGEST: digest,
        "mlplatform.model_name": ref.name,
        "mlplatform.project": project,
    }
    with tempfile.TemporaryDirectory(prefix="ml-platform-image-") as tmp:
        context = Path(tmp)
        _write_context(context, ref, digest, base, labels)
        image = build(client, what=f"model image {reference}", log=log, path=str(context),
                      tag=reference, network_mode="none", pull=False)
    size = int(image.attrs.get("Size", 0))
    built = ImageRef(reference, str(image.id), size, ref.version, digest, labels)
    log.info("built %s (%d MB)", reference, size // 1_000_000)
    if registry:
        built = ImageRef(**{**built.__dict__, "digest": push(client, *split_reference(reference))})
        log.info("pushed %s", built.pinned)
    return built


def _verified_digest(ref: ModelRef) -> str:
    if ref.digest is None:
        raise ImageBuildError(
            f"{ref.model_uri} has no recorded digest, so the image could not prove it carries "
            "the approved files; register the model through ModelRegistry.log_candidate"
        )
    return ref.digest


def _write_context(context: Path, ref: ModelRef, digest: str, base: str,
                   labels: Mapping[str, str]) -> None:
    rootfs = context / "rootfs"
    model_dir = rootfs / MODEL_DIR.lstrip("/")
    try:
        shutil.copytree(ref.artifact_path, model_dir)
        shutil.copytree(Path(ml_platform.__file__).parent, rootfs / APP_DIR.lstrip("/") /
                        "ml_platform", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    except OSError as e:
        raise ImageBuildError(f"cannot assemble the build context for {ref.model_uri}: {e}") from e
    copied = directory_digest(model_dir)
    if copied != digest:
        raise ImageBuildError(
            f"{ref.model_uri}: the files at {ref.artifact_path} hash to {copied[:12]}, but the "
            f"registry recorded {digest[:12]}; the artifact changed after registration. Retrain "
            "or restore the model files; an image is only built from the approved artifact."
        )
    entry = rootfs / "usr" / "local" / "bin" / "serve-model"
    entry.parent.mkdir(parents=True)
    entry.write_text(_ENTRYPOINT.format(digest=digest, version=ref.version))
    entry.chmod(0o755)
    _make_world_readable(rootfs)
    (context / "Dockerfile").write_text(_DOCKERFILE.format(
        base=base, labels=" \\\n      ".join(f"{k}={_quote(v)}" for k, v in labels.items()),
    ))


def _make_world_readable(root: Path) -> None:
    # COPY keeps the context's modes and root owns the files: the app user must read, not write
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))


def _quote(value: str) -> str:
    # a LABEL value is a Dockerfile word: quotes, backslashes and $ (substitution) are escaped
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + escaped.replace("\n", " ") + '"'
