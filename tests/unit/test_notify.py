"""Notifications: the webhook against a real local HTTP receiver, the file sink, once-per-failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ml_platform.errors import NotificationError
from ml_platform.notify import (
    AlertCursor,
    FileNotifier,
    FinishedRun,
    Notification,
    WebhookNotifier,
    check_failure,
    deliver,
)

SECRET_PATH = "/services/T000/B000/very-secret-token"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{SECRET_PATH}", handler
    finally:
        server.shutdown()
        server.server_close()


def _note(i: int = 0) -> Notification:
    return check_failure(
        key=f"run{i}:churn/evaluation:fairness",
        project="churn",
        asset="churn/evaluation",
        check="fairness",
        severity="warning",
        message="gender demographic_parity_difference = 0.4 > 0.2",
        run_id=f"run{i}",
        base_url="http://dagster.example:3000/",
        facts={"mode": "warning"},
    )


def test_webhook_posts_slack_compatible_json_with_the_run_link(receiver) -> None:
    url, handler = receiver
    WebhookNotifier(url).send(_note())
    ((path, payload),) = handler.received
    assert path == SECRET_PATH
    assert "fairness" in payload["text"] and "http://dagster.example:3000/runs/run0" in payload["text"]
    block = payload["blocks"][0]["text"]
    assert block["type"] == "mrkdwn" and "<http://dagster.example:3000/runs/run0|" in block["text"]


def test_webhook_errors_never_contain_the_url(receiver) -> None:
    url, handler = receiver
    handler.status = 500
    notifier = WebhookNotifier(url)
    with pytest.raises(NotificationError) as info:
        notifier.send(_note())
    assert "HTTP 500" in str(info.value) and "127.0.0.1" in str(info.value)
    assert "secret" not in str(info.value) and info.value.__cause__ is None
    assert "secret" not in repr(notifier)
    with pytest.raises(NotificationError) as refused:
        WebhookNotifier("http://127.0.0.1:9" + SECRET_PATH, timeout=2).send(_note())
    assert "secret" not in str(refused.value)


def test_file_sink_appends_one_json_line_per_notification(tmp_path: Path) -> None:
    sink = FileNotifier(tmp_path / "n" / "notifications.jsonl")
    sink.send(_note(1))
    sink.send(_note(2))
    lines = [json.loads(x) for x in sink.path.read_text().splitlines()]
    assert [x["key"] for x in lines] == ["run1:churn/evaluation:fairness", "run2:churn/evaluation:fairness"]
    assert lines[0]["link"] == "http://dagster.example:3000/runs/run1"


class _Flaky:
    """Fails the n-th send once, then works: a webhook that was briefly down."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls, self.sent = fail_at, 0, []

    def send(self, n: Notification) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise NotificationError("down")
        self.sent.append(n.key)


def test_deliver_sends_each_failure_once_and_resumes_after_an_error() -> None:
    runs = [
        FinishedRun(10, (_note(1), _note(2))),
        FinishedRun(12, ()),  # a successful run without failures still moves the cursor
        FinishedRun(15, (_note(3),)),
    ]
    notifier = _Flaky(fail_at=2)
    first = deliver(runs, notifier, AlertCursor())
    assert first.error == "down" and first.cursor == AlertCursor(0, 1) and first.cursor.dump() == "0:1"
    second = deliver(runs, notifier, AlertCursor.parse(first.cursor.dump()))
    assert second.error is None and second.cursor == AlertCursor(15)
    third = deliver(runs, notifier, second.cursor)
    assert third.sent == 0
    keys = [n.key for n in (_note(1), _note(2), _note(3))]
    assert notifier.sent == keys  # every failure exactly once, in order


def test_a_malformed_cursor_is_reported() -> None:
    with pytest.raises(NotificationError, match="reset the sensor's cursor"):
        AlertCursor.parse("abc")
