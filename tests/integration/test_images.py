"""Base image, model image, registry push and the three image gates against a real Docker engine
and a real OCI registry (.ci/run starts both; locally these tests skip without them).

The base image (debootstrap) is built at most once per machine: its tag is a hash of the
requirement set, so later runs find it in the engine's cache.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections.abc import Iterator

import docker
import docker.errors
import httpx
import pytest

from ml_platform.deploy import DockerDeployer
from ml_platform.images import (
    BASE_IMAGE_ENV,
    BaseImage,
    ImageRef,
    build_model_image,
    check_container_smoke,
    check_image_size,
    check_no_secrets,
    ensure_base_image,
)
from ml_platform.images.base import ensure_os_image
from tests.conftest import require_service
from tests.integration.model_support import Registered, register_churn_model
from tests.integration.test_mlflow_registry import CODE_SHA, DATA_COMMIT

pytestmark = pytest.mark.integration
GiB = 1 << 30


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException:
        require_service(False, "a Docker engine (dockerd)")
    yield c
    c.close()


@pytest.fixture(scope="module")
def registry() -> str:
    address = os.environ.get("ML_PLATFORM_REGISTRY", "127.0.0.1:5000")
    try:
        ok = httpx.get(f"http://{address}/v2/", timeout=3).status_code == 200
    except httpx.HTTPError:
        ok = False
    require_service(ok, f"an OCI registry at {address} (ML_PLATFORM_REGISTRY)")
    return address


@pytest.fixture(scope="module")
def base(client) -> BaseImage:
    start = time.monotonic()
    image = ensure_base_image(client, configured="")  # the project's own, whatever the env says
    print(f"\nbase image {image.tag}: built={image.built} in {time.monotonic() - start:.1f} s")
    return image


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Registered:
    return register_churn_model(tmp_path_factory.mktemp("images") / "home")


@pytest.fixture(scope="module")
def image(client, base, model, registry) -> ImageRef:
    start = time.monotonic()
    built = build_model_image(client, model.ref, project="churn", git_sha=CODE_SHA,
                              data_commit=DATA_COMMIT, base_image=base, registry=registry,
                              source="https://example.invalid/acme/churn.git")
    print(f"\nmodel image {built.pinned} built and pushed in {time.monotonic() - start:.1f} s")
    return built


def test_base_image_is_cached_by_requirement_set(client, base) -> None:
    start = time.monotonic()
    again = ensure_base_image(client, configured="")
    assert time.monotonic() - start < 2.0
    assert (again.tag, again.image_id, again.built) == (base.tag, base.image_id, False)
    config = client.images.get(base.tag).attrs["Config"]
    assert config["User"] == "app"
    assert "VIRTUAL_ENV=/opt/venv" in config["Env"]
    assert any(r.startswith("mlflow-skinny==") for r in base.requirements)
    assert "scikit-learn" in config["Labels"]["mlplatform.base.requirements"]


def test_configured_base_image_is_used_as_is(client, base, monkeypatch) -> None:
    monkeypatch.setenv(BASE_IMAGE_ENV, base.tag)
    chosen = ensure_base_image(client, python_requirements=["not-a-package==0"])
    assert (chosen.tag, chosen.configured, chosen.built) == (base.tag, True, False)


def test_model_image_is_tagged_labelled_pushed_and_pulled_back_by_digest(
        client, image, model, registry) -> None:
    assert image.reference == f"{registry}/churn-model:v1-{CODE_SHA[:12]}"
    labels = client.images.get(image.reference).labels
    assert labels["org.opencontainers.image.revision"] == CODE_SHA
    assert labels["org.opencontainers.image.source"] == "https://example.invalid/acme/churn.git"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["mlplatform.data_commit"] == DATA_COMMIT
    assert labels["mlplatform.mlflow_run_id"] == model.ref.run_id
    assert (labels["mlplatform.model_version"], labels["mlplatform.model_digest"]) == (
        "1", model.ref.digest)
    assert image.digest is not None and image.digest.startswith("sha256:")
    manifest = httpx.get(f"http://{registry}/v2/churn-model/manifests/{image.digest}",
                         headers={"accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert manifest.status_code == 200
    client.images.remove(image.reference)  # only the tag goes: the layers stay for the others
    pulled = client.images.pull(image.pinned)
    assert pulled.id == image.image_id
    pulled.tag(image.repository, image.tag)


def test_image_size_gate(client, image) -> None:
    ok = check_image_size(client, image, limit_bytes=2 * GiB)
    assert ok.passed and ok.gate == "image_size" and 100e6 < ok.observed < 2 * GiB
    too_big = check_image_size(client, image, limit_bytes=10_000_000)
    assert not too_big.passed and "over the limit" in too_big.message


def test_container_smoke_gives_the_in_process_predictions(client, image, model) -> None:
    verdict = check_container_smoke(client, image, model_dir=model.ref.artifact_path,
                                    model_digest=model.ref.digest, sample=model.sample)
    assert verdict.passed, verdict.message + str(verdict.details.get("logs", ""))
    assert verdict.gate == "container_smoke" and verdict.details["mismatched_rows"] == []
    assert verdict.details["user"] == "app" and verdict.details["rows"] == len(model.sample)
    assert not client.containers.list(all=True, filters={"label": "mlplatform.role"})


def test_model_image_has_no_secrets(client, image) -> None:
    verdict = check_no_secrets(client, image, secrets={"$REGISTRY_PASSWORD": "n0t-in-the-image"})
    assert verdict.passed, verdict.message
    assert verdict.details["files_scanned"] > 10_000 and verdict.details["layers_scanned"] >= 3
    # GnuTLS' FIPS self-test key is a known, waived private key, listed but not failing
    assert all(f["path"].startswith("/usr/lib/") for f in verdict.details["waived"])


FAKE_KEY = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(["QUJD" * 16] * 6) + \
    "\n-----END RSA PRIVATE KEY-----\n"
SECRET = "tok-3f9a8c7e1d2b4a6f"


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def planted(client, tmp_path) -> Iterator[str]:
    """A two-layer image: a clean one, then a layer with a key and a token in its files."""
    client.api.import_image_from_data(
        _tar({"etc/os-release": "ID=test\n",
              "lib/ssh.py": 'MARKER = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n'}),
        repository="ml-platform-test/planted-base", tag="1")
    ctx = tmp_path / "ctx"
    (ctx / "srv" / "keys").mkdir(parents=True)
    (ctx / "srv" / "keys" / "id_rsa").write_text(FAKE_KEY)
    (ctx / "srv" / "app.env").write_text(f"MODE=prod\nAPI_TOKEN={SECRET}\n")
    (ctx / "Dockerfile").write_text("FROM ml-platform-test/planted-base:1\nCOPY srv/ /srv/\n")
    client.images.build(path=str(ctx), tag="ml-platform-test/planted:1", rm=True,
                        network_mode="none")
    yield "ml-platform-test/planted:1"
    for ref in ("ml-platform-test/planted:1", "ml-platform-test/planted-base:1"):
        client.images.remove(ref, force=True)


def test_planted_key_and_secret_are_found_without_revealing_the_secret(client, planted) -> None:
    verdict = check_no_secrets(client, planted, secrets={"$API_TOKEN": SECRET, "$SHORT": "x"})
    assert not verdict.passed and verdict.gate == "no_secrets_in_image"
    found = {(f["kind"], f["path"]) for f in verdict.details["findings"]}
    assert found == {("private key", "/srv/keys/id_rsa"), ("secret", "/srv/app.env")}
    assert all(f["layer"].startswith("2/2 ") for f in verdict.details["findings"])
    assert "$API_TOKEN" in verdict.message and "/srv/keys/id_rsa" in verdict.message
    assert verdict.details["secrets_too_short"] == ["$SHORT"]
    assert SECRET not in json.dumps(verdict.to_dict())  # nor in the message or the details
    allowed = check_no_secrets(client, planted, secrets={}, allow_paths=["/srv/keys/*"])
    assert allowed.passed and [f["path"] for f in allowed.details["waived"]] == [
        "/srv/keys/id_rsa"]


def test_docker_deployer_runs_the_image_with_host_networking(client, image, model,
                                                             tmp_path) -> None:
    deployer = DockerDeployer(client, tmp_path / "deployments", project="churn")
    try:
        endpoint = deployer.deploy("canary", image)
        assert (endpoint.backend, endpoint.model_version) == ("docker", "1")
        reply = httpx.post(f"{endpoint.url}/predict", json={"records": model.sample[:2]},
                           timeout=10)
        assert reply.status_code == 200 and reply.json()["variant"] == "canary"
        assert DockerDeployer(client, tmp_path / "deployments", project="churn").health(
            "canary").ready
    finally:
        deployer.stop("canary")
    assert deployer.health("canary").detail == "not deployed"
    assert not client.containers.list(all=True, filters={"label": "mlplatform.project=churn"})


def test_os_image_recipe_is_cached_by_script_hash(client, base) -> None:
    tag = ensure_os_image(client)
    assert tag.startswith("ml-platform/debian-python:bookworm-")
    assert client.images.get(tag).attrs["Size"] < 200e6  # docs, man pages and locales stripped
