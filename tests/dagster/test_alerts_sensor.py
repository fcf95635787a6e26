"""failure_alerts_sensor on a real instance: one notification per failed check and failed run.

No `from __future__ import annotations`: Dagster rejects a string annotation on `context`.
"""

import json
import threading
from pathlib import Path

import dagster as dg

from resources.notifier import NotifierResource
from sensors.alerts import build_failure_alerts_sensor

BASE = "http://dagster.example:3000"


@dg.asset(key=["toy", "table"])
def table() -> int:
    return 1


@dg.asset_check(asset=table, name="has_rows")
def has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"message": "0 rows"}
    )


@dg.asset(key=["toy", "broken"])
def broken() -> None:
    raise ValueError("the upstream export is missing")


def _tick(instance: dg.DagsterInstance, cursor: str | None, notifier: NotifierResource):
    sensor = build_failure_alerts_sensor()
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": notifier})
    return sensor.evaluate_tick(ctx)


def test_one_notification_per_failed_check_and_failed_run_then_nothing(tmp_path: Path) -> None:
    notifier = NotifierResource(file_path=str(tmp_path / "alerts.jsonl"), dagster_url=BASE)
    with dg.instance_for_test() as instance:
        ok = dg.materialize([table, has_rows], instance=instance)
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        first = _tick(instance, None, notifier)
        sent = [json.loads(x) for x in Path(notifier.file_path).read_text().splitlines()]
        assert [n["title"] for n in sent] == [
            "[toy] gate has_rows failed on toy/table",
            "run of __ephemeral_asset_job__ failed",
        ]
        assert sent[0]["link"] == f"{BASE}/runs/{ok.run_id}" and sent[0]["severity"] == "warning"
        assert sent[1]["link"] == f"{BASE}/runs/{failed.run_id}"
        assert "the upstream export is missing" in sent[1]["text"]

        again = _tick(instance, first.cursor, notifier)
        assert again.skip_message and again.cursor in (None, first.cursor)
        assert len(Path(notifier.file_path).read_text().splitlines()) == 2  # once per failure

        dg.materialize([broken], instance=instance, raise_on_error=False)
        third = _tick(instance, first.cursor, notifier)
        assert int(third.cursor) > int(first.cursor)
        assert len(Path(notifier.file_path).read_text().splitlines()) == 3


def test_webhook_notifier_resource_posts_to_a_real_receiver(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        notifier = NotifierResource(
            webhook_url=f"http://127.0.0.1:{server.server_port}/hook", dagster_url=BASE
        )
        with dg.instance_for_test() as instance:
            run = dg.materialize([broken], instance=instance, raise_on_error=False)
            _tick(instance, None, notifier)
    finally:
        server.shutdown()
        server.server_close()
    (payload,) = received
    assert f"{BASE}/runs/{run.run_id}" in payload["text"]
