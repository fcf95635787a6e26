"""Gates on a built model image: ``image_size``, ``container_smoke``, ``no_secrets_in_image``.

Each returns a :class:`~ml_platform.gates.Verdict`; an engine that cannot answer at all (the
image is gone, Docker is down) raises ImageBuildError instead of producing a verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
from docker.models.containers import Container

from ml_platform._poll import Clock, Sleeper, free_port, wait_for_http
from ml_platform.config import Direction
from ml_platform.deploy.base import SERVER_THREADS_ENV
from ml_platform.errors import DeploymentError, ImageBuildError
from ml_platform.gates import Verdict
from ml_platform.images._docker import find_image
from ml_platform.images.build import ImageRef
from ml_platform.images.secrets import SecretFinding, scan_image_for_secrets

log = logging.getLogger(__name__)
ROOT_USERS = ("", "root", "0", "0:0", "root:root")


def _image(client: docker.DockerClient, image: ImageRef | str) -> Any:
    ref = image.reference if isinstance(image, ImageRef) else image
    found = find_image(client, ref)
    if found is None:
        raise ImageBuildError(f"image '{ref}' is not on the Docker engine; build or pull it first")
    return found


def check_image_size(client: docker.DockerClient, image: ImageRef | str, *,
                     limit_bytes: int) -> Verdict:
    """The image's uncompressed size (all layers, base included) against ``limit_bytes``."""
    size = int(_image(client, image).attrs.get("Size", 0))
    ok = size <= limit_bytes
    return Verdict(
        gate="image_size", passed=ok, observed=size, threshold=limit_bytes,
        direction=Direction.LOWER_IS_BETTER,
        message=(f"image is {size / 1e6:.0f} MB, "
                 f"{'within' if ok else 'over'} the limit of {limit_bytes / 1e6:.0f} MB"
                 + ("" if ok else ": trim the base image requirements or the model artifact")),
    )


def in_process_predictions(model_dir: Path, model_digest: str,
                           sample: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the server should answer for ``sample``: the same loader and input path, in-process."""
    from ml_platform.serving.model import load_model
    from ml_platform.serving.schema import parse_payload, to_frame

    model = load_model(model_dir, expected_digest=model_digest)
    columns = parse_payload({"records": list(sample)}, model.schema, max_rows=len(sample))
    labels, scores = model.predict(to_frame(model.schema, columns))
    return {"predictions": labels, "scores": scores}


def check_container_smoke(
    client: docker.DockerClient,
    image: ImageRef | str,
    *,
    model_dir: Path,
    model_digest: str,
    sample: Sequence[Mapping[str, Any]],
    timeout: float = 180.0,
    clock: Clock = time.monotonic,
    sleeper: Sleeper = time.sleep,
) -> Verdict:
    """Run the image (host network, free port), wait for /ready, POST ``sample`` to /predict and
    require exactly the predictions the same model gives in-process. The container is always
    removed."""
    img = _image(client, image)
    user = str(img.attrs.get("Config", {}).get("User") or "")
    expected = in_process_predictions(model_dir, model_digest, sample)
    port = free_port()
    container = _start(client, str(img.id), port)
    try:
        details: dict[str, Any] = {"port": port, "user": user, "rows": len(sample)}
        ready = wait_for_http(f"http://127.0.0.1:{port}/ready", timeout=timeout,
                              alive=lambda: _gone(container), clock=clock, sleeper=sleeper)
        details["ready_after_seconds"] = round(ready.waited, 2)
        if not ready.ok:
            details["logs"] = _logs(container)
            return _smoke_fail(f"the container did not become ready within {timeout:.0f} s "
                               f"(last: {ready.last})", details)
        return _compare(port, sample, expected, user, details)
    finally:
        _remove(container)


def _start(client: docker.DockerClient, image_id: str, port: int) -> Container:
    try:
        return client.containers.run(
            image_id, detach=True, network_mode="host",
            environment={"PORT": str(port), "HOST": "127.0.0.1", "VARIANT": "smoke",
                         **SERVER_THREADS_ENV},
            labels={"mlplatform.role": "container-smoke"},
        )
    except docker.errors.APIError as e:
        raise ImageBuildError(f"cannot start a smoke container from {image_id}: {e}") from e


def _compare(port: int, sample: Sequence[Mapping[str, Any]], expected: Mapping[str, Any],
             user: str, details: dict[str, Any]) -> Verdict:
    try:
        reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"records": list(sample)},
                           timeout=30.0)
    except httpx.HTTPError as e:
        return _smoke_fail(f"POST /predict failed: {type(e).__name__}: {e}", details)
    if reply.status_code != 200:
        return _smoke_fail(f"POST /predict answered {reply.status_code}: {reply.text[:300]}",
                           details)
    body = reply.json()
    got = {"predictions": body.get("predictions"), "scores": body.get("scores")}
    mismatched = [i for i in range(len(sample)) if _row(got, i) != _row(expected, i)]
    details["mismatched_rows"] = mismatched[:20]
    if mismatched:
        return _smoke_fail(f"{len(mismatched)} of {len(sample)} predictions differ from the "
                           "same model in-process (first rows: "
                           f"{mismatched[:5]}); the image's dependencies differ from training's",
                           details, observed=len(mismatched))
    if user in ROOT_USERS:
        return _smoke_fail(f"the image runs as root (User={user!r}); model images must run as "
                           "a non-root user", details, observed=0)
    return Verdict(gate="container_smoke", passed=True, observed=0, threshold=0,
                   direction=Direction.LOWER_IS_BETTER, details=details,
                   message=(f"container served {len(sample)} predictions identical to the model "
                            f"in-process, as user {user!r}, ready in "
                            f"{details['ready_after_seconds']} s"))


def _row(result: Mapping[str, Any], i: int) -> tuple[Any, Any]:
    preds, scores = result.get("predictions") or [], result.get("scores")
    return (preds[i] if i < len(preds) else None,
            scores[i] if scores is not None and i < len(scores) else None)


def _smoke_fail(message: str, details: dict[str, Any], observed: int | None = None) -> Verdict:
    return Verdict(gate="container_smoke", passed=False, message=message, observed=observed,
                   threshold=0, direction=Direction.LOWER_IS_BETTER, details=details)


def _gone(container: Container) -> str | None:
    try:
        container.reload()
    except docker.errors.NotFound:
        return "the container was removed"
    except docker.errors.APIError as e:
        raise DeploymentError(f"cannot inspect smoke container {container.short_id}: {e}") from e
    if container.status in ("exited", "dead"):
        code = container.attrs.get("State", {}).get("ExitCode")
        return f"the container exited with code {code}"
    return None


def _logs(container: Container) -> str:
    try:
        return container.logs(tail=40).decode("utf-8", "replace")
    except docker.errors.APIError as e:
        return f"(logs unavailable: {e})"


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        log.warning("could not remove smoke container %s: %s", container.short_id, e)


def check_no_secrets(client: docker.DockerClient, image: ImageRef | str, *,
                     secrets: Mapping[str, str],
                     allow_paths: Sequence[str] = ()) -> Verdict:
    """Scan every layer's files and the image config for ``secrets`` (name -> value) and private
    key blocks. Findings name the secret, layer and path, never the value."""
    img = _image(client, image)
    result = scan_image_for_secrets(img.save(named=False), secrets, allow_paths=allow_paths)
    details: dict[str, Any] = {
        "findings": [f.to_dict() for f in result.findings],
        "waived": [f.to_dict() for f in result.waived],
        "files_scanned": result.files_scanned, "layers_scanned": result.layers_scanned,
        "secrets_checked": sorted(result.checked), "secrets_too_short": sorted(result.skipped),
    }
    if not result.findings:
        return Verdict(gate="no_secrets_in_image", passed=True, observed=0, threshold=0,
                       direction=Direction.LOWER_IS_BETTER, details=details,
                       message=(f"no private keys and none of {len(result.checked)} configured "
                                f"secret values in {result.files_scanned} files of "
                                f"{result.layers_scanned} layers"))
    return Verdict(gate="no_secrets_in_image", passed=False, observed=len(result.findings),
                   threshold=0, direction=Direction.LOWER_IS_BETTER, details=details,
                   message=_findings_message(result.findings))


def _findings_message(findings: Sequence[SecretFinding]) -> str:
    shown = "; ".join(f.describe() for f in findings[:5])
    more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
    return (f"{len(findings)} secret(s) found in the image: {shown}{more}. Remove them from the "
            "build context (pass secrets at run time instead), rebuild, and rotate every "
            "exposed secret: it is in the image's layer history.")
