"""The project's Python base image, built from Debian packages and PyPI wheels only.

Two stages, each cached by a content-derived tag:

1. the OS image ``ml-platform/debian-python:<suite>-<script hash>``: ``scripts/build-base-image.sh``
   (debootstrap minbase + python3, python3-venv, ca-certificates, then ``docker import``);
2. the base image ``<name>:<requirements hash>``: one thin layer with a venv at ``/opt/venv``
   holding the serving requirements, pinned to the versions installed here, plus the non-root
   ``app`` user the model images run as.

The wheels are downloaded by *this* environment's pip (so its index, proxy and CA settings
apply) and served to the build over loopback, so the build itself needs no outbound network
and no wheel ends up in a layer. Users with a registry set ``ML_PLATFORM_BASE_IMAGE`` to a
prebuilt image; it is then used as it is.

    python -m ml_platform.images.base     # build (or find) the base image; prints its tag
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.images import Image

from ml_platform.errors import ImageBuildError
from ml_platform.images._docker import find_image

BASE_IMAGE_ENV = "ML_PLATFORM_BASE_IMAGE"
DEFAULT_REPOSITORY = "ml-platform/python-base"
OS_REPOSITORY = "ml-platform/debian-python"
DEFAULT_SUITE = "bookworm"
VENV = "/opt/venv"
APP_USER = "app"
APP_UID = 10001
# What `python -m ml_platform.serving.server` imports, and the router's httpx. mlflow-skinny is
# mlflow without its tracking server/UI dependencies; it loads models the same way.
REQUIRED_PACKAGES = ("mlflow-skinny", "scikit-learn", "scipy", "pandas", "numpy", "skops",
                     "starlette", "uvicorn", "prometheus-client", "httpx")
OPTIONAL_PACKAGES = ("uvloop", "httptools")  # uvicorn's fast paths, when installed here
_PYTHON = "3.11"  # bookworm's python3; wheels are fetched for this interpreter
_ALIASES = {"mlflow-skinny": ("mlflow-skinny", "mlflow")}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseImage:
    """A base image ready to build model images ``FROM``."""

    tag: str
    image_id: str
    requirements: tuple[str, ...]  # empty for a configured image (not ours to know)
    built: bool  # False when found in the engine's cache or configured
    configured: bool  # taken as-is from ML_PLATFORM_BASE_IMAGE
    seconds: float


def serving_requirements() -> tuple[str, ...]:
    """``name==version`` of every package the model server needs, as installed here."""
    pins = [_pin(name, required=True) for name in REQUIRED_PACKAGES]
    pins += [_pin(name, required=False) for name in OPTIONAL_PACKAGES]
    return tuple(sorted(p for p in pins if p is not None))


def _pin(name: str, *, required: bool) -> str | None:
    for dist in _ALIASES.get(name, (name,)):
        try:
            return f"{name}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    if required:
        raise ImageBuildError(
            f"cannot pin '{name}' for the base image: it is not installed in this environment "
            f"({sys.prefix}); install the project's dependencies (make install) and retry"
        )
    return None


def base_image_tag(requirements: Sequence[str], *, name: str = DEFAULT_REPOSITORY,
                   suite: str = DEFAULT_SUITE, script: Path | None = None) -> str:
    """``name:<hash>`` over the requirement set, the Debian suite, the recipe and this module."""
    h = hashlib.sha256()
    for part in (*sorted(requirements), suite, _INSTALL, *_CHANGES,
                 _script_path(script).read_text()):
        h.update(part.encode() + b"\0")
    return f"{name}:{h.hexdigest()[:16]}"


def ensure_base_image(
    client: docker.DockerClient,
    *,
    name: str = DEFAULT_REPOSITORY,
    python_requirements: Sequence[str] | None = None,
    configured: str | None = None,
    suite: str = DEFAULT_SUITE,
    script: Path | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BaseImage:
    """The base image to build model images on: configured, cached, or built now.

    ``configured`` (default: ``$ML_PLATFORM_BASE_IMAGE``) is used as-is, pulled if the engine
    lacks it. Otherwise the tag is derived from ``python_requirements`` (default:
    :func:`serving_requirements`); an existing image with that tag returns at once.
    """
    start = clock()
    env = os.environ if environ is None else environ
    chosen = configured or env.get(BASE_IMAGE_ENV)
    if chosen:
        image = _configured_image(client, chosen)
        return BaseImage(chosen, str(image.id), (), False, True, clock() - start)
    requirements = tuple(sorted(python_requirements or serving_requirements()))
    tag = base_image_tag(requirements, name=name, suite=suite, script=script)
    found = find_image(client, tag)
    if found is not None:
        return BaseImage(tag, str(found.id), requirements, False, False, clock() - start)
    os_tag = ensure_os_image(client, suite=suite, script=script, clock=clock)
    image = _build_venv_layer(client, tag, os_tag, requirements, clock)
    seconds = clock() - start
    log.info("built base image %s in %.0f s", tag, seconds)
    return BaseImage(tag, str(image.id), requirements, True, False, seconds)


def _configured_image(client: docker.DockerClient, ref: str) -> Image:
    found = find_image(client, ref)
    if found is not None:
        return found
    try:
        return client.images.pull(ref)
    except docker.errors.APIError as e:
        raise ImageBuildError(
            f"the configured base image '{ref}' (${BASE_IMAGE_ENV}) is not on this engine and "
            f"cannot be pulled: {e}. Push it to a reachable registry, or unset "
            f"{BASE_IMAGE_ENV} to build the project's own base image."
        ) from e


def _script_path(script: Path | None) -> Path:
    path = script or Path(__file__).resolve().parents[2] / "scripts" / "build-base-image.sh"
    if not path.is_file():
        raise ImageBuildError(
            f"the base image recipe '{path}' is missing (it ships with the source checkout, not "
            f"the wheel); run from a checkout, or set {BASE_IMAGE_ENV} to a prebuilt base image"
        )
    return path


def ensure_os_image(client: docker.DockerClient, *, suite: str = DEFAULT_SUITE,
                    script: Path | None = None,
                    clock: Callable[[], float] = time.monotonic) -> str:
    """The debootstrapped OS image's tag, running the recipe script when it is missing."""
    path = _script_path(script)
    tag = f"{OS_REPOSITORY}:{suite}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    if find_image(client, tag) is not None:
        return tag
    start = clock()
    log.info("building OS image %s with %s (debootstrap: minutes)", tag, path)
    env = {**os.environ, "DEBIAN_SUITE": suite}
    try:
        done = subprocess.run(["bash", str(path), tag], env=env, capture_output=True, text=True,
                              check=False)
    except OSError as e:
        raise ImageBuildError(f"cannot run the base image recipe '{path}': {e}") from e
    if done.returncode != 0:
        raise ImageBuildError(
            f"the base image recipe '{path}' exited {done.returncode} building {tag}; its output "
            f"ends with:\n{done.stderr[-3000:]}\nIt needs root, debootstrap, a running Docker "
            "engine and access to the Debian mirror."
        )
    log.info("OS image %s built in %.0f s", tag, clock() - start)
    return tag


# One container run + one commit instead of a Dockerfile: with the vfs storage driver every
# build step (even ENV or LABEL) copies the whole filesystem, ~20 s each for this image.
_INSTALL = """\
set -eu
python3 -m venv {venv}
{venv}/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \\
  --find-links "{url}" -r "{url}/requirements.txt"
# test suites are never imported at run time and are a fifth of the venv
find {venv}/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {{}} +
printf '%s\\n' {requirements} > {venv}/ml-platform-requirements.txt
useradd --system --uid {uid} --user-group --create-home --home-dir /home/{user} \\
  --shell /usr/sbin/nologin {user}
"""

# The image config every model image inherits: it adds /app, /model and the entrypoint script.
_CHANGES = (
    "ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
    "VIRTUAL_ENV={venv} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/app "
    "MODEL_DIR=/model HOST=0.0.0.0 PORT=8080 VARIANT=default",
    "USER {user}",
    "WORKDIR /home/{user}",
    'ENTRYPOINT ["/usr/local/bin/serve-model"]',
    'LABEL org.opencontainers.image.title="ml-platform python base" '
    'org.opencontainers.image.base.name="{os_tag}" mlplatform.base.requirements="{reqs}"',
)


def _build_venv_layer(client: docker.DockerClient, tag: str, os_tag: str,
                      requirements: tuple[str, ...], clock: Callable[[], float]) -> Image:
    with tempfile.TemporaryDirectory(prefix="ml-platform-wheels-") as tmp:
        wheels = Path(tmp)
        start = clock()
        _download_wheels(requirements, wheels)
        log.info("downloaded %d wheels in %.0f s", len(list(wheels.glob("*.whl"))),
                 clock() - start)
        (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
        with _serve_directory(wheels) as url:
            script = _INSTALL.format(venv=VENV, url=url, uid=APP_UID, user=APP_USER,
                                     requirements=" ".join(requirements))
            container = _run_install(client, os_tag, script, tag)
    try:
        repository, _, version = tag.rpartition(":")
        changes = [c.format(venv=VENV, user=APP_USER, os_tag=os_tag, reqs=" ".join(requirements))
                   for c in _CHANGES]
        container.commit(repository=repository, tag=version, changes=changes,
                         message=f"venv {VENV} with {len(requirements)} serving requirements")
    except docker.errors.APIError as e:
        raise ImageBuildError(f"cannot commit base image {tag}: {e}") from e
    finally:
        _remove_quietly(container)
    return client.images.get(tag)


def _run_install(client: docker.DockerClient, os_tag: str, script: str, tag: str) -> Container:
    """Run the install script in a container of the OS image; the stopped container on success."""
    try:
        container = client.containers.run(os_tag, ["/bin/sh", "-c", script], detach=True,
                                          network_mode="host", user="root")
        code = int(container.wait().get("StatusCode", -1))
    except docker.errors.APIError as e:
        raise ImageBuildError(f"cannot run the venv install for {tag} in {os_tag}: {e}") from e
    if code != 0:
        logs = container.logs(tail=30).decode("utf-8", "replace")
        _remove_quietly(container)
        raise ImageBuildError(
            f"installing the serving requirements into {tag} failed (exit {code}); the output "
            f"ends with:\n{logs}\nCheck that every requirement has a Linux wheel for CPython "
            f"{_PYTHON}."
        )
    return container


def _remove_quietly(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.APIError as e:
        log.warning("could not remove build container %s: %s", container.short_id, e)


def _download_wheels(requirements: Sequence[str], dest: Path) -> None:
    """Binary wheels for bookworm's CPython, transitive versions pinned to this environment."""
    constraints = dest / "constraints.txt"
    constraints.write_text("\n".join(_installed_pins()) + "\n")
    arch = platform.machine()
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    args = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--dest", str(dest), "--only-binary=:all:", "--python-version", _PYTHON,
            "--implementation", "cp", "--abi", f"cp{_PYTHON.replace('.', '')}",
            *[a for p in [*platforms, f"manylinux2014_{arch}"] for a in ("--platform", p)],
            "--constraint", str(constraints), *requirements]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ImageBuildError(f"cannot run pip to download the base image wheels: {e}") from e
    constraints.unlink()
    if done.returncode != 0:
        raise ImageBuildError(
            f"pip could not download wheels for {', '.join(requirements)} (CPython {_PYTHON}, "
            f"manylinux {arch}): {done.stderr.strip()[-2000:]}. Check the package index is "
            "reachable and that these versions publish Linux wheels."
        )


def _installed_pins() -> list[str]:
    pins = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and "+" not in dist.version and name.lower() != "ml-platform":
            pins.add(f"{name}=={dist.version}")
    return sorted(pins)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("wheel server: " + format, *args)


@contextmanager
def _serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` read-only on a free loopback port for the duration of a build."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m ml_platform.images.base",
                                description="Build (or find) the project's Python base image.")
    p.add_argument("--name", default=DEFAULT_REPOSITORY)
    p.add_argument("--suite", default=DEFAULT_SUITE)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    image = ensure_base_image(docker.from_env(), name=args.name, suite=args.suite)
    state = "configured" if image.configured else "built" if image.built else "cached"
    print(f"{image.tag} ({state}, {image.seconds:.1f} s)")


if __name__ == "__main__":
    main()
