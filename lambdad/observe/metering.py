"""Metering: requests and GB-seconds per function, with the cost at AWS's list prices.

The invoke path only adds to in-memory counters; a background task writes them to SQLite in
batches (``usage.db`` in the data directory), so no invoke waits on a disk write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from lambdad import tasks
from lambdad.store import sqlite_files

#: AWS Lambda list prices, x86_64, us-east-1: per request and per GB-second.
PRICE_PER_REQUEST = 0.20 / 1_000_000
PRICE_PER_GB_SECOND = 0.0000166667

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    function TEXT NOT NULL,
    hour INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    gb_seconds REAL NOT NULL,
    errors INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (function, hour)
);
"""


@dataclass
class Usage:
    function: str
    requests: int
    gb_seconds: float
    errors: int

    @property
    def cost(self) -> float:
        return self.requests * PRICE_PER_REQUEST + self.gb_seconds * PRICE_PER_GB_SECOND


class Meter:
    """Counts invocations in memory and flushes them to ``usage.db`` every few seconds."""

    def __init__(self, path: Path, flush_interval_s: float = 5.0) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._pending: defaultdict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0, 0])
        self._task: asyncio.Task[None] | None = None
        sqlite_files.connect(path, _SCHEMA).close()

    def record(self, function: str, billed_ms: int, memory_mb: int, error: bool) -> None:
        """Called once per invocation: requests + billed duration x memory."""
        counters = self._pending[(function, int(time.time()) // 3600)]
        counters[0] += 1
        counters[1] += billed_ms / 1000 * memory_mb / 1024
        counters[2] += int(error)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0.0, 0])
        if pending:
            await asyncio.to_thread(self._write, dict(pending))

    def _write(self, pending: dict[tuple[str, int], list[float]]) -> None:
        conn = sqlite_files.connect(self.path, same_thread=True)
        try:
            with sqlite_files.transaction(conn):
                conn.executemany(
                    "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (function, hour) DO UPDATE SET "
                    "requests = requests + excluded.requests, gb_seconds = gb_seconds + excluded.gb_seconds, "
                    "errors = errors + excluded.errors",
                    [(fn, hour, int(c[0]), c[1], int(c[2])) for (fn, hour), c in pending.items()],
                )
        finally:
            conn.close()

    async def close(self) -> None:
        await tasks.stop(self._task)
        await self.flush()


def read_usage(path: Path, since_hour: int = 0) -> list[Usage]:
    """Totals per function from ``usage.db`` (read-only; safe while the server runs)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT function, SUM(requests), SUM(gb_seconds), SUM(errors) FROM usage WHERE hour >= ? "
            "GROUP BY function ORDER BY function",
            (since_hour,),
        ).fetchall()
    finally:
        conn.close()
    return [Usage(fn, int(req), float(gbs), int(err)) for fn, req, gbs, err in rows]
