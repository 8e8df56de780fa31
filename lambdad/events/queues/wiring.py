"""Plugging the queue service into the HTTP app (called by the composition root)."""

from __future__ import annotations

from lambdad.events.queues.api import queues_service
from lambdad.events.queues.store import QueueStore
from lambdad.http.app import App

TARGET_PREFIX = "AmazonSQS"


def install_queues(app: App, store: QueueStore) -> None:
    """Serve the SQS API (X-Amz-Target ``AmazonSQS.*``, on any path, queue URLs included) from ``store``."""
    app.json_services[TARGET_PREFIX] = queues_service(store)
