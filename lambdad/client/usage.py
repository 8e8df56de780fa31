"""``lambdad usage``: requests, GB-seconds, errors and cost per function, from ``usage.db``.

Reads the server's data directory directly (read-only, safe while it runs). The server adds to it
every 5 seconds, so the last few seconds of invocations may not show yet. Usage is kept per hour,
so ``--since`` counts whole hours: 24h means the current hour and the 24 before it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lambdad.client.errors import EXIT_USAGE, CliError
from lambdad.client.output import parse_since, table
from lambdad.client.session import add_data_dir

if TYPE_CHECKING:
    from lambdad.observe.metering import Usage

HEADERS = ("FUNCTION", "REQUESTS", "GB-SECONDS", "ERRORS", "COST (USD)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "usage",
        help="requests, GB-seconds and cost per function (AWS prices)",
        description="Per-function usage from <data dir>/usage.db, with the cost at AWS Lambda's list "
        "prices. Reads the file directly: run it on the server's host.",
    )
    parser.add_argument(
        "--since", default="24h", help="how far back: 1h, 24h, 7d, 30d, or 'all' (default 24h)"
    )
    add_data_dir(parser)
    parser.set_defaults(run=run)


def since_hour(text: str, now: float) -> int:
    if text == "all":
        return 0
    return int(parse_since(text, now) // 3600)


def rows(usage: Sequence[Usage]) -> list[list[str]]:
    """One row per function, then the total."""
    from lambdad.observe.metering import Usage

    total = Usage(
        "TOTAL",
        sum(u.requests for u in usage),
        sum(u.gb_seconds for u in usage),
        sum(u.errors for u in usage),
    )
    return [[u.function, *_cells(u)] for u in [*usage, total]]


def _cells(u: Usage) -> list[str]:
    return [f"{u.requests:,}", f"{u.gb_seconds:,.6f}", f"{u.errors:,}", f"${u.cost:,.8f}"]


def run(args: argparse.Namespace) -> int:
    from lambdad.observe.metering import PRICE_PER_GB_SECOND, PRICE_PER_REQUEST, read_usage

    try:
        hour = since_hour(args.since, time.time())
    except ValueError as exc:
        raise CliError(f"--since: {exc}", EXIT_USAGE) from exc
    if not args.data_dir.is_dir():
        raise CliError(f"no lambdad data directory at {args.data_dir}: pass the server's --data-dir")
    usage = read_usage(args.data_dir / "usage.db", hour)
    if not usage:
        print(
            f"no invocations recorded in {args.data_dir / 'usage.db'} for --since {args.since} "
            "(the server writes usage every 5 s)",
            file=sys.stderr,
        )
        return 0
    print(table(HEADERS, rows(usage), frozenset({1, 2, 3, 4})))
    print(
        f"prices: ${PRICE_PER_REQUEST * 1_000_000:.2f} per million requests, ${PRICE_PER_GB_SECOND:.10f} per "
        "GB-second (AWS list prices, x86, us-east-1; free tier not deducted)",
        file=sys.stderr,
    )
    return 0
