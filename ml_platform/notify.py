"""Notifications: one message per failure, to a Slack-compatible webhook or a JSON-lines file.

The webhook URL is a secret (a Slack incoming-webhook URL is its own credential): it is never
put in a message, an exception or a repr; errors name the host only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

from ml_platform.errors import NotificationError

Severity = Literal["error", "warning", "info"]
_ICON = {"error": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}


@dataclass(frozen=True)
class Notification:
    """What failed, where to look, and a stable key (one notification per failure)."""

    key: str  # e.g. "check:<storage id>"; receivers may de-duplicate on it
    title: str
    text: str
    severity: Severity = "error"
    link: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def slack_payload(self) -> dict[str, Any]:
        """Slack incoming-webhook JSON: ``text`` for any receiver, ``blocks`` for Slack itself."""
        link = f"\n<{self.link}|Open the run in Dagster>" if self.link else ""
        facts = "\n".join(f"*{k}*: {v}" for k, v in self.fields.items())
        body = f"{_ICON[self.severity]} *{self.title}*\n{self.text}" + (f"\n{facts}" if facts else "") + link
        return {
            "text": f"{self.title}: {self.text}" + (f" {self.link}" if self.link else ""),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}}],
        }


class Notifier(Protocol):
    def send(self, notification: Notification) -> None: ...


class FileNotifier:
    """Appends one JSON object per notification to a file (the embedded default)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileNotifier({str(self.path)!r})"

    def send(self, notification: Notification) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(notification), default=str) + "\n")
        except OSError as e:
            raise NotificationError(f"cannot append a notification to {self.path}: {e}") from e


Opener = Callable[..., Any]


class WebhookNotifier:
    """POSTs Slack-compatible JSON to a webhook URL; any 2xx answer counts as delivered."""

    def __init__(self, url: str, *, timeout: float = 10.0, opener: Opener = urllib.request.urlopen) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise NotificationError("the notification webhook URL must be an http(s) URL with a host")
        self._url = url
        self._host = parsed.hostname or "?"
        self._timeout = timeout
        self._open = opener

    def __repr__(self) -> str:  # the URL is a credential: never show it
        return f"WebhookNotifier(host={self._host!r})"

    def send(self, notification: Notification) -> None:
        body = json.dumps(notification.slack_payload()).encode("utf-8")
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with self._open(request, timeout=self._timeout) as response:
                status = int(response.status)
        # `from None`: the urllib exceptions carry the full URL (e.g. HTTPError.url), which is the
        # secret; chaining them would put it in tracebacks and Dagster's event log.
        except urllib.error.HTTPError as e:
            raise NotificationError(f"the webhook at {self._host} answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise NotificationError(f"cannot reach the webhook at {self._host}: {reason}") from None
        if not 200 <= status < 300:
            raise NotificationError(f"the webhook at {self._host} answered HTTP {status}")


def run_link(base_url: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/runs/{run_id}"


def check_failure(
    *,
    key: str,
    project: str,
    asset: str,
    check: str,
    severity: Severity,
    message: str,
    run_id: str,
    base_url: str,
    facts: Mapping[str, str] | None = None,
) -> Notification:
    """The notification for one failed asset check evaluation."""
    return Notification(
        key=key,
        title=f"[{project}] gate {check} failed on {asset}",
        text=message,
        severity=severity,
        link=run_link(base_url, run_id),
        fields={"asset": asset, "check": check, "run": run_id, **(facts or {})},
    )


def run_failure(*, key: str, job: str, run_id: str, message: str, base_url: str) -> Notification:
    """The notification for one failed run."""
    return Notification(
        key=key,
        title=f"run of {job} failed",
        text=message,
        severity="error",
        link=run_link(base_url, run_id),
        fields={"job": job, "run": run_id},
    )


@dataclass(frozen=True)
class AlertCursor:
    """Progress of the alert sensor: every run whose completion event has a storage id up to
    ``after`` is fully notified, plus the first ``sent_in_next`` notifications of the next one."""

    after: int = 0
    sent_in_next: int = 0

    @classmethod
    def parse(cls, raw: str | None) -> AlertCursor:
        if not raw:
            return cls()
        after, _, sent = raw.partition(":")
        if not after.isdigit() or (sent and not sent.isdigit()):
            raise NotificationError(
                f"alert cursor '{raw}' is not '<storage id>[:<sent>]'; reset the sensor's cursor"
            )
        return cls(int(after), int(sent or 0))

    def dump(self) -> str:
        return f"{self.after}:{self.sent_in_next}" if self.sent_in_next else str(self.after)


@dataclass(frozen=True)
class FinishedRun:
    """A finished run (its completion event's storage id) and one notification per failure in it."""

    storage_id: int
    notifications: tuple[Notification, ...]


@dataclass(frozen=True)
class Delivery:
    cursor: AlertCursor
    sent: int
    error: str | None = None


def deliver(runs: list[FinishedRun], notifier: Notifier, cursor: AlertCursor) -> Delivery:
    """Send each failure's notification once, in storage-id order.

    Stops at the first delivery error and returns the cursor just before it, so the next tick
    resumes there: nothing is sent twice and nothing is skipped.
    """
    after, skip, sent = cursor.after, cursor.sent_in_next, 0
    for run in sorted(runs, key=lambda r: r.storage_id):
        if run.storage_id <= after:
            continue
        for i, notification in enumerate(run.notifications):
            if i < skip:
                continue
            try:
                notifier.send(notification)
            except NotificationError as e:
                return Delivery(AlertCursor(after, i), sent, str(e))
            sent += 1
        after, skip = run.storage_id, 0
    return Delivery(AlertCursor(after, 0), sent)


def rollout_notification(message: Any, link: str | None = None) -> Notification:
    """A rollout's message (``ml_platform.rollout`` RequestApproval / Notify) as a Notification.

    Keyed by rollout and phase, so a message re-sent after a crash (at-least-once) is one
    notification for receivers that de-duplicate."""
    from ml_platform.rollout.model import Phase, RequestApproval

    if isinstance(message, RequestApproval):
        return Notification(
            key=f"rollout:{message.rollout_id}:approval", title=f"{message.project}: approval needed",
            text=message.message, severity="warning", link=link,
            fields={"rollout": message.rollout_id,
                    "approve with": f"ml-platform approve {message.project} --by NAME --reason WHY"})
    severity: Severity = "error" if message.phase is Phase.ROLLED_BACK else "info"
    return Notification(
        key=f"rollout:{message.rollout_id}:{message.phase.value}",
        title=f"{message.project}: rollout {message.phase.value}", text=message.message,
        severity=severity, link=link, fields={"rollout": message.rollout_id})
