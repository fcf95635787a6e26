"""The notification channel: a Slack-compatible webhook, or a JSON-lines file by default.

The webhook URL is a credential. It only ever arrives through ``dg.EnvVar`` (so the Dagster UI
shows the variable's name, never its value) and the notifier never logs or reports it.
"""

import os
from collections.abc import Callable
from typing import Any

import dagster as dg

from ml_platform.notify import (
    FileNotifier,
    Notification,
    Notifier,
    WebhookNotifier,
    rollout_notification,
)
from ml_platform.settings import platform_paths

WEBHOOK_ENV = "ML_PLATFORM_ALERT_WEBHOOK_URL"
DAGSTER_URL_ENV = "ML_PLATFORM_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"


class NotifierResource(dg.ConfigurableResource):
    """Where failure notifications go: ``webhook_url`` (dg.EnvVar only) or else ``file_path``."""

    webhook_url: str = ""  # '' = no webhook: append to file_path
    file_path: str = ""  # '' = <platform home>/notifications.jsonl
    dagster_url: str = DEFAULT_DAGSTER_URL  # base of the run links in notifications
    timeout_seconds: float = 10.0

    def notifier(self) -> Notifier:
        if self.webhook_url:
            return WebhookNotifier(self.webhook_url, timeout=self.timeout_seconds)
        return FileNotifier(self.file_path or platform_paths().notifications)

    def send(self, notification: Notification) -> None:
        self.notifier().send(notification)

    def rollout_notifier(self) -> Callable[[Any], None]:
        """The rollout controller's notifier (ml_platform.rollout Message -> this sink)."""
        sink = self.notifier()
        return lambda message: sink.send(rollout_notification(message))


def notifier_resource() -> NotifierResource:
    """The default notifier: the webhook when $ML_PLATFORM_ALERT_WEBHOOK_URL is set (read through
    dg.EnvVar at run time; only its presence is looked at here), else the JSON-lines file."""
    dagster_url = os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL
    if os.environ.get(WEBHOOK_ENV):
        return NotifierResource(webhook_url=dg.EnvVar(WEBHOOK_ENV), dagster_url=dagster_url)
    return NotifierResource(dagster_url=dagster_url)
