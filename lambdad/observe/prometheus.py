"""``/metrics``: the current counters and gauges as Prometheus text (exposition format 0.0.4).

What is exposed, per function (label ``function``): ``lambdad_invocations_total``,
``lambdad_errors_total``, ``lambdad_throttles_total``, the ``lambdad_duration_seconds`` histogram,
the ``lambdad_concurrent_executions`` gauge (and account-wide ``lambdad_unreserved_concurrent_executions``),
and ``lambdad_events_total{metric=...}`` for the async and destination counts (AsyncEventsReceived,
AsyncEventsDropped, DeadLetterErrors, DestinationDeliveryFailures, ...). Counters count since the
server started, as Prometheus expects.

Protection: function names and their load are not public. When the server is given a metrics token
(``--metrics-token``), a scrape must send ``Authorization: Bearer <token>`` (compared in constant
time); without a token, only clients on the loopback interface (127.0.0.0/8, ::1) are served.
Anything else gets 401 (bad or missing token) or 403 (not loopback). The endpoint never takes SigV4,
so a scraper needs no AWS keys. Example ``prometheus.yml``::

    scrape_configs:
      - job_name: lambdad
        authorization: {credentials: "<token>"}
        static_configs: [{targets: ["lambdad-host:9000"]}]
"""

from __future__ import annotations

import hmac
import ipaddress
import re

from lambdad.http.app import Headers, Request
from lambdad.observe.metrics import DURATION_BUCKETS_MS, MetricStore

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render(store: MetricStore) -> str:
    """The exposition text of everything ``store`` counts now."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    totals = sorted(store.totals.items())
    for attr, help_text in (
        ("invocations", "Invocations that ran (success or function error)."),
        ("errors", "Invocations that ended in a function error."),
        ("throttles", "Requests refused for lack of concurrency."),
    ):
        family(f"lambdad_{attr}_total", "counter", help_text)
        for function, t in totals:
            lines.append(f'lambdad_{attr}_total{{function="{_label(function)}"}} {getattr(t, attr)}')
    family("lambdad_duration_seconds", "histogram", "Time spent in the handler per invocation.")
    for function, t in totals:
        fn = _label(function)
        cumulative = 0
        for bound, n in zip((*DURATION_BUCKETS_MS, None), t.duration_buckets, strict=True):
            cumulative += n
            le = "+Inf" if bound is None else _number(bound / 1000)
            lines.append(f'lambdad_duration_seconds_bucket{{function="{fn}",le="{le}"}} {cumulative}')
        lines.append(f'lambdad_duration_seconds_sum{{function="{fn}"}} {_number(t.duration_sum_ms / 1000)}')
        lines.append(f'lambdad_duration_seconds_count{{function="{fn}"}} {t.invocations}')
    per_function, unreserved = store.concurrency()
    family("lambdad_concurrent_executions", "gauge", "Invocations in flight now.")
    for function, n in sorted(per_function.items()):
        lines.append(f'lambdad_concurrent_executions{{function="{_label(function)}"}} {n}')
    family(
        "lambdad_unreserved_concurrent_executions",
        "gauge",
        "In flight now in functions without reserved concurrency.",
    )
    lines.append(f"lambdad_unreserved_concurrent_executions {unreserved}")
    family("lambdad_events_total", "counter", "Async and destination events, by AWS/Lambda metric name.")
    for (metric, function), value in sorted(store.event_totals.items()):
        name = _SNAKE.sub("_", metric).lower()
        lines.append(
            f'lambdad_events_total{{metric="{name}",function="{_label(function)}"}} {_number(value)}'
        )
    return "\n".join(lines) + "\n"


def _is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class PrometheusEndpoint:
    """The raw route for ``/metrics``, guarded by a bearer token or, without one, loopback only."""

    def __init__(self, store: MetricStore, token: str | None = None) -> None:
        self._store = store
        self._token = token.encode() if token else None

    def allowed(self, request: Request) -> int:
        """200 when the scrape may proceed, else the status to refuse it with."""
        if self._token is None:
            return 200 if _is_loopback(request.client) else 403
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            return 401
        return 200

    async def __call__(self, request: Request) -> tuple[int, Headers, bytes]:
        status = self.allowed(request)
        if status == 401:
            return (
                401,
                [(b"www-authenticate", b'Bearer realm="lambdad-metrics"'), (b"content-type", b"text/plain")],
                b"A valid bearer token is required.\n",
            )
        if status == 403:
            return (
                403,
                [(b"content-type", b"text/plain")],
                b"/metrics is served to loopback clients only; start lambdad with --metrics-token to scrape it remotely.\n",
            )
        if request.method not in ("GET", "HEAD"):
            return 405, [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")], b"Method not allowed.\n"
        body = render(self._store).encode()
        return 200, [(b"content-type", CONTENT_TYPE)], b"" if request.method == "HEAD" else body
