"""The model server in-process (httpx.ASGITransport): contract, errors, metrics, feedback, log."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pytest

from ml_platform.errors import DeploymentError
from ml_platform.serving import create_app, directory_digest
from tests.unit.serving_support import asgi_client, make_frame, one_record, save_model

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("serving") / "model")


@pytest.fixture
def app(model_dir: Path, tmp_path: Path) -> Any:
    return create_app(model_dir, expected_digest=directory_digest(model_dir), variant="canary",
                      sample_log_path=tmp_path / "samples.jsonl", sample_rate=1.0,
                      max_body_bytes=20_000, max_rows=50, rng=random.Random(0))


@pytest.fixture
async def client(app: Any) -> AsyncIterator[Any]:
    async with asgi_client(app) as c:
        yield c


def _records(n: int, seed: int = 3) -> list[dict[str, Any]]:
    X, _ = make_frame(n, seed)
    return [{"amount": float(r.amount), "visits": int(r.visits), "city": str(r.city),
             "member": bool(r.member)} for r in X.itertuples()]


async def test_predict_records_matches_the_model(client: Any, model_dir: Path) -> None:
    records = _records(5)
    r = await client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    X, _ = make_frame(5, 3)
    sk = mlflow.sklearn.load_model(str(model_dir))
    assert body["predictions"] == sk.predict(X).tolist()
    assert body["scores"] == pytest.approx(sk.predict_proba(X)[:, 1].tolist())
    assert body["variant"] == "canary" and body["model_version"]
    assert len(body["request_id"]) == 32


async def test_predict_columns_equals_records(client: Any) -> None:
    records = _records(4)
    columns = {k: [rec[k] for rec in records] for k in records[0]}
    a = (await client.post("/predict", json={"records": records})).json()
    b = (await client.post("/predict", json={"columns": columns})).json()
    assert a["predictions"] == b["predictions"] and a["scores"] == b["scores"]


async def test_ints_are_accepted_for_double_columns(client: Any) -> None:
    r = await client.post("/predict", json={"records": [{**one_record(), "amount": 40}]})
    assert r.status_code == 200, r.text


GOOD = one_record()
BAD_INPUTS = [
    ({"records": [{**GOOD, "amount": "12"}]}, 422, "amount"),
    ({"records": [{**GOOD, "visits": 1.5}]}, 422, "visits"),
    ({"records": [{**GOOD, "visits": True}]}, 422, "visits"),
    ({"records": [{**GOOD, "visits": 2**70}]}, 422, "visits"),
    ({"records": [{**GOOD, "member": 1}]}, 422, "member"),
    ({"records": [{**GOOD, "city": None}]}, 422, "city"),
    ({"records": [{**GOOD, "city": ["paris"]}]}, 422, "city"),
    ({"records": [{k: v for k, v in GOOD.items() if k != "visits"}]}, 422, "visits"),
    ({"records": [{**GOOD, "zip": "75001"}]}, 422, "zip"),
    ({"records": [GOOD, "row"]}, 422, "records"),
    ({"records": []}, 422, "records"),
    ({"records": [GOOD] * 51}, 422, "records"),
    ({"records": {"a": 1}}, 422, "records"),
    ({"columns": {k: [v] for k, v in GOOD.items()} | {"amount": [1.0, 2.0]}}, 422, "columns"),
    ({"columns": {k: [] for k in GOOD}}, 422, "columns"),
    ({"columns": {k: v for k, v in GOOD.items()}}, 422, "amount"),
    ({"columns": {**{k: [v] for k, v in GOOD.items()}, "extra": [1]}}, 422, "extra"),
    ({"records": [GOOD], "columns": {}}, 422, None),
    ({"rows": [GOOD]}, 422, "rows"),
    ([GOOD], 422, None),
    ("records", 422, None),
]


@pytest.mark.parametrize(("payload", "status", "field"), BAD_INPUTS)
async def test_bad_input_is_4xx_naming_the_field(client: Any, payload: Any, status: int,
                                                 field: str | None) -> None:
    r = await client.post("/predict", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert r.json()["error"]


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"records": [NaN]}',
                                  b"\xff\xfe\x00", b"[" * 100_00])
async def test_not_json_is_400(client: Any, body: bytes) -> None:
    r = await client.post("/predict", content=body)
    assert r.status_code in (400, 413), r.text
    assert "error" in r.json()


async def test_body_over_the_limit_is_413(client: Any) -> None:
    r = await client.post("/predict", json={"records": [GOOD] * 400})
    assert r.status_code == 413 and r.json()["field"] is None

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while streaming
        for _ in range(30):
            yield b" " * 1000

    r = await client.post("/predict", content=chunks())
    assert r.status_code == 413


def test_digest_mismatch_refuses_to_start(model_dir: Path) -> None:
    with pytest.raises(DeploymentError, match="digest"):
        create_app(model_dir, expected_digest="0" * 64, variant="stable")


def test_digest_covers_file_contents(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "copy"))
    assert directory_digest(copy) == directory_digest(model_dir)
    (copy / "MLmodel").write_text((copy / "MLmodel").read_text() + "\n# tampered\n")
    with pytest.raises(DeploymentError, match="refusing"):
        create_app(copy, expected_digest=directory_digest(model_dir), variant="stable")


def test_one_digest_implementation_for_registry_gate_and_server() -> None:
    from ml_platform import model_gates, tracking

    # A second copy could drift and make every server refuse its model; there must be one.
    assert model_gates.directory_digest is directory_digest
    assert tracking.directory_digest is directory_digest


async def test_probes(client: Any) -> None:
    assert (await client.get("/health")).json() == {"status": "alive"}
    assert (await client.get("/ready")).json()["status"] == "ready"


async def test_metrics_count_requests_errors_latency_and_scores(client: Any) -> None:
    await client.post("/predict", json={"records": _records(3)})
    await client.post("/predict", json={"records": []})
    await client.post("/predict", content=b"x")
    text = (await client.get("/metrics")).text
    assert 'model_requests_total{endpoint="predict",status="200"} 1.0' in text
    assert 'model_requests_total{endpoint="predict",status="422"} 1.0' in text
    assert 'model_errors_total{endpoint="predict",kind="bad_request"} 2.0' in text
    assert 'model_request_latency_seconds_count{endpoint="predict"} 3.0' in text
    assert "model_prediction_score_count 3.0" in text
    assert 'model_info{model_version=' in text


async def test_feedback_gives_live_accuracy(client: Any) -> None:
    served = []
    for rec in _records(8):
        body = (await client.post("/predict", json={"records": [rec]})).json()
        served.append((body["request_id"], body["predictions"][0]))
    for i, (rid, pred) in enumerate(served):  # 6 right, 2 wrong
        label = pred if i < 6 else 1 - pred
        r = await client.post("/feedback", json={"request_id": rid, "label": label})
        assert r.status_code == 200 and r.json()["correct"] == (i < 6)
    stats = (await client.get("/stats")).json()
    assert (stats["feedback"], stats["correct"], stats["live_accuracy"]) == (8, 6, 0.75)
    assert "model_live_accuracy 0.75" in (await client.get("/metrics")).text
    again = await client.post("/feedback", json={"request_id": served[0][0], "label": 1})
    assert again.status_code == 409


@pytest.mark.parametrize(("payload", "status", "field"), [
    ({"request_id": "f" * 32, "label": 1}, 404, "request_id"),
    ({"request_id": "abc", "label": 2}, 422, "label"),
    ({"request_id": "abc", "label": True}, 422, "label"),
    ({"request_id": 5, "label": 1}, 422, "request_id"),
    ({"request_id": "abc", "label": 1, "extra": 1}, 422, "extra"),
    ([], 422, None),
])
async def test_bad_feedback_is_4xx(client: Any, payload: Any, status: int,
                                   field: str | None) -> None:
    r = await client.post("/feedback", json=payload)
    assert (r.status_code, r.json()["field"]) == (status, field)


async def test_feedback_on_a_multi_row_request_needs_the_row(client: Any) -> None:
    rid = (await client.post("/predict", json={"records": _records(3)})).json()["request_id"]
    r = await client.post("/feedback", json={"request_id": rid, "label": 1})
    assert (r.status_code, r.json()["field"]) == (422, "row")
    r = await client.post("/feedback", json={"request_id": rid, "label": 1, "row": 2})
    assert r.status_code == 200 and r.json()["row"] == 2


async def test_sample_log_holds_inputs_and_predictions(client: Any, tmp_path: Path) -> None:
    records = _records(2)
    body = (await client.post("/predict", json={"records": records})).json()
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    logged = json.loads(lines[-1])
    assert logged["request_id"] == body["request_id"]
    assert logged["inputs"]["city"] == [r["city"] for r in records]
    assert logged["predictions"] == body["predictions"] and logged["variant"] == "canary"


async def test_concurrent_requests_are_batched_but_answered_separately(
    client: Any, model_dir: Path
) -> None:
    records = _records(40, seed=11)
    replies = await asyncio.gather(*(client.post("/predict", json={"records": [rec]})
                                     for rec in records))
    X, _ = make_frame(40, 11)
    expected = mlflow.sklearn.load_model(str(model_dir)).predict_proba(X)[:, 1]
    got = [r.json()["scores"][0] for r in replies]
    assert got == pytest.approx(expected.tolist())
    assert len({r.json()["request_id"] for r in replies}) == 40
