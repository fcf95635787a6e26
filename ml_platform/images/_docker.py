"""Docker engine plumbing shared by the image modules: streamed builds and pushes, lookups."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import docker
import docker.errors
from docker.models.images import Image

from ml_platform.errors import ImageBuildError

_TAIL = 25


def find_image(client: docker.DockerClient, ref: str) -> Image | None:
    """The local image ``ref``, or None when the engine does not have it."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as e:
        raise ImageBuildError(f"cannot inspect image '{ref}' on the Docker engine: {e}") from e


def build(
    client: docker.DockerClient,
    *,
    what: str,
    log: logging.Logger,
    **kwargs: Any,
) -> Image:
    """Run a classic-builder build, streaming its log; any ``error`` chunk is an ImageBuildError.

    ``kwargs`` go to ``APIClient.build`` (path/fileobj, tag, buildargs, network_mode, ...).
    Intermediate containers are always removed (the SDK's default leaves them behind).
    """
    tail: deque[str] = deque(maxlen=_TAIL)
    image_id: str | None = None
    try:
        chunks = client.api.build(decode=True, rm=True, forcerm=True, **kwargs)
        image_id = _consume_build(chunks, what, tail, log)
    except docker.errors.APIError as e:
        raise ImageBuildError(_build_failed(what, str(e), tail)) from e
    if image_id is None:
        raise ImageBuildError(_build_failed(what, "the engine reported no image id", tail))
    return client.images.get(image_id)


def _consume_build(chunks: Iterable[Mapping[str, Any]], what: str, tail: deque[str],
                   log: logging.Logger) -> str | None:
    image_id: str | None = None
    for chunk in chunks:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise ImageBuildError(_build_failed(what, str(detail).strip(), tail))
        line = str(chunk.get("stream", "")).rstrip()
        if line:
            tail.append(line)
            log.debug("%s: %s", what, line)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
    return image_id


def _build_failed(what: str, detail: str, tail: deque[str]) -> str:
    log_tail = "\n".join(tail) or "(no build output)"
    return (f"building {what} failed: {detail}. Last build output:\n{log_tail}\n"
            "Fix the cause above (a missing base image, a failing RUN step) and build again.")


def push(client: docker.DockerClient, repository: str, tag: str) -> str:
    """Push ``repository:tag``; the registry's manifest digest (``sha256:...``).

    Every chunk is read: an ``error`` chunk anywhere (auth, a layer upload) fails the push.
    """
    digest: str | None = None
    try:
        for chunk in client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageBuildError(
                    f"pushing {repository}:{tag} failed: {detail}. Check that the registry is "
                    "running and reachable, and that you are logged in to it if it needs auth."
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "Digest" in aux:
                digest = str(aux["Digest"])
    except docker.errors.APIError as e:
        raise ImageBuildError(f"pushing {repository}:{tag} failed: {e}") from e
    if digest is None:
        raise ImageBuildError(f"pushing {repository}:{tag} finished without a manifest digest "
                              "from the registry; the push did not complete")
    return digest


def split_reference(ref: str) -> tuple[str, str]:
    """``host:5000/a/b:tag`` -> (``host:5000/a/b``, ``tag``); a registry port is not a tag."""
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repo, tag
