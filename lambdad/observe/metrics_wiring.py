"""Plugging the metric store's APIs into the HTTP app (called by the composition root)."""

from __future__ import annotations

from lambdad.http.app import App
from lambdad.http.query import QueryService
from lambdad.observe.cloudwatch_api import API_VERSION, TARGET_PREFIX, cloudwatch_service
from lambdad.observe.metrics import MetricStore
from lambdad.observe.prometheus import PrometheusEndpoint

XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"


def install_metrics(app: App, metrics: MetricStore, token: str | None = None) -> None:
    """Serve CloudWatch's metric reads (rpc-v2-cbor, json and query) and ``/metrics`` from ``metrics``.

    ``token``: the bearer token ``/metrics`` requires; None serves it to loopback clients only.
    """
    service = cloudwatch_service(metrics)
    app.json_services[TARGET_PREFIX] = service
    app.query_services[API_VERSION] = QueryService(service, XMLNS)
    app.add_raw_route("/metrics", PrometheusEndpoint(metrics, token))
