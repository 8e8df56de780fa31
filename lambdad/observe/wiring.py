"""Plugging the log store's API into the HTTP app (called by the composition root)."""

from __future__ import annotations

from lambdad.http.app import App
from lambdad.observe.logs_api import logs_service
from lambdad.observe.logstore import LogStore

TARGET_PREFIX = "Logs_20140328"


def install_logs(app: App, store: LogStore) -> None:
    """Serve the CloudWatch Logs API (X-Amz-Target ``Logs_20140328.*``) from ``store``."""
    app.json_services[TARGET_PREFIX] = logs_service(store)
