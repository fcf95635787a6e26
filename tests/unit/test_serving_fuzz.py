"""Fuzzed /predict and /feedback bodies: every malformed request gets a 4xx, the server stays up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.serving import create_app, directory_digest
from tests.unit.serving_support import FEATURES, one_record, save_model

GOOD = one_record()
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(min_value=2**62, max_value=2**80))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
keys = st.one_of(st.sampled_from(FEATURES), st.text(max_size=6))
records = st.lists(st.one_of(st.dictionaries(keys, json_values, max_size=6), json_values),
                   max_size=5)
mutated = st.builds(lambda k, v, drop: {key: val for key, val in {**GOOD, k: v}.items()
                                        if key != drop},
                    keys, json_values, st.sampled_from((*FEATURES, None)))
payloads = st.one_of(
    json_values,
    st.builds(lambda r: {"records": r}, records),
    st.builds(lambda r: {"records": [r]}, mutated),
    st.builds(lambda c: {"columns": c}, st.dictionaries(keys, st.lists(json_values, max_size=3),
                                                       max_size=5)),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
feedbacks = st.one_of(json_values, st.fixed_dictionaries(
    {"request_id": json_values, "label": json_values}, optional={"row": json_values}))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Any]]:
    model_dir = save_model(tmp_path_factory.mktemp("fuzz") / "model")
    app = create_app(model_dir, expected_digest=directory_digest(model_dir), variant="stable",
                     max_body_bytes=50_000, max_rows=20)
    with asyncio.Runner() as runner:  # one loop for every example, like a long-lived server
        yield runner, app


def _post(served: tuple[asyncio.Runner, Any], path: str, **kwargs: Any) -> httpx.Response:
    runner, app = served

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post(path, **kwargs)

    return runner.run(go())


def _assert_client_error_or_ok(r: httpx.Response) -> None:
    assert r.status_code in (200, 400, 404, 409, 413, 422), (r.status_code, r.text)
    body = r.json()
    if r.status_code != 200:
        assert set(body) >= {"error", "field"}


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(payload=payloads)
def test_fuzzed_json_predict_is_never_5xx(served: Any, payload: Any) -> None:
    _assert_client_error_or_ok(_post(served, "/predict", json=payload))


@FUZZ
@given(body=st.binary(max_size=200))
def test_fuzzed_bytes_predict_is_never_5xx(served: Any, body: bytes) -> None:
    _assert_client_error_or_ok(_post(served, "/predict", content=body))


@FUZZ
@given(payload=feedbacks)
def test_fuzzed_feedback_is_never_5xx(served: Any, payload: Any) -> None:
    _assert_client_error_or_ok(_post(served, "/feedback", json=payload))


def test_server_still_serves_after_the_fuzzing(served: Any) -> None:
    r = _post(served, "/predict", json={"records": [GOOD]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    metrics = _post(served, "/predict", json={"records": []})
    assert metrics.status_code == 422


def test_missing_model_directory_is_refused(tmp_path: Path) -> None:
    # guard for the fixture above: a missing directory is refused, not served empty
    from ml_platform.errors import DeploymentError

    with pytest.raises(DeploymentError):
        create_app(tmp_path / "missing", expected_digest=None, variant="stable")
