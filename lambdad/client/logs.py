"""``lambdad logs``: a function's log events, like ``aws logs tail /aws/lambda/NAME [--follow]``.

Reads with FilterLogEvents from a start time, following nextToken to the end; with --follow it
polls again from the newest timestamp seen, and drops events already printed by their eventId
(events of the same millisecond come back on the next poll).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from lambdad.client.errors import EXIT_USAGE, CliError
from lambdad.client.output import parse_since
from lambdad.client.session import connect, connection_parser

POLL_INTERVAL_S = 1.0

Fetch = Callable[[dict[str, Any]], dict[str, Any]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "logs",
        parents=[connection_parser()],
        help="print a function's logs; --follow keeps printing new ones",
        description="Print the log events of /aws/lambda/NAME. Ctrl-C stops --follow.",
    )
    parser.add_argument("name", metavar="NAME", help="function name")
    parser.add_argument("-f", "--follow", action="store_true", help="keep polling for new events")
    parser.add_argument(
        "--since",
        default="10m",
        help="how far back: 30s, 10m, 24h, 7d or a time such as 2024-05-01T12:00 (default 10m)",
    )
    parser.add_argument("--filter", metavar="PATTERN", help="CloudWatch Logs filter pattern, e.g. ERROR")
    parser.set_defaults(run=run)


class LogTail:
    """Reads new events of one log group on each ``poll``."""

    def __init__(self, fetch: Fetch, group: str, start_ms: int, pattern: str | None = None) -> None:
        self.fetch = fetch
        self.request: dict[str, Any] = {"logGroupName": group}
        if pattern:
            self.request["filterPattern"] = pattern
        self.start_ms = start_ms
        self.seen: dict[str, int] = {}

    def _pages(self) -> Iterator[dict[str, Any]]:
        request = dict(self.request, startTime=self.start_ms)
        while True:
            page = self.fetch(request)
            yield from page.get("events", [])
            token = page.get("nextToken")
            if not token or token == request.get("nextToken"):
                return
            request["nextToken"] = token

    def poll(self) -> list[dict[str, Any]]:
        """Events not returned before, oldest first."""
        fresh = [e for e in self._pages() if e["eventId"] not in self.seen]
        fresh.sort(key=lambda e: e["timestamp"])
        for event in fresh:
            self.seen[event["eventId"]] = event["timestamp"]
        if fresh:
            self.start_ms = max(self.start_ms, fresh[-1]["timestamp"])
            self.seen = {k: t for k, t in self.seen.items() if t >= self.start_ms}
        return fresh


def format_event(event: dict[str, Any]) -> str:
    """``2024-05-01T12:00:00.123Z 0a1b2c3d message``: the time, the environment, the line."""
    moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    stream = event.get("logStreamName", "")
    environment = stream.rpartition("]")[2][:8] or stream[-8:]
    return f"{moment}Z {environment} {event['message'].rstrip()}"


def tail(
    log: LogTail,
    follow: bool,
    emit: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print what there is; with ``follow``, keep polling until interrupted."""
    while True:
        for event in log.poll():
            emit(format_event(event))
        if not follow:
            return
        sleep(POLL_INTERVAL_S)


def _emit(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        start_ms = int(parse_since(args.since, time.time()) * 1000)
    except ValueError as exc:
        raise CliError(f"--since: {exc}", EXIT_USAGE) from exc
    api = connect(args)
    logs, lam = api.client("logs"), api.client("lambda")
    group = f"/aws/lambda/{args.name}"
    missing = logs.exceptions.ResourceNotFoundException

    def fetch(request: dict[str, Any]) -> dict[str, Any]:
        try:
            page: dict[str, Any] = logs.filter_log_events(**request)
        except missing:
            lam.get_function_configuration(FunctionName=args.name)  # raises: function not found
            if not args.follow:
                print(
                    f"no logs yet for {args.name}: invoke it with `lambdad invoke {args.name}`",
                    file=sys.stderr,
                )
            return {"events": []}
        return page

    try:
        tail(LogTail(fetch, group, start_ms, args.filter), args.follow, _emit)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    return 0
