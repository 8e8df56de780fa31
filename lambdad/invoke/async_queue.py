"""Durable asynchronous invocation: the event queue on disk and the dispatcher that drains it.

An Event invoke is committed to ``<data_dir>/async.db`` (SQLite, WAL) before its 202 is answered, so a
crash right after loses nothing. The dispatcher keeps only ids and due times in memory (a heap), loads
the whole backlog again at start-up, and runs each event through ``InvokeService.run`` with the request
id it was accepted with. An event is deleted only after its result was handled (destinations, DLQ)
and the log lines of its run were committed (``durable``, the log store's flush), in batches, so
delivery is at least once and observable: a crash in between runs it again.

Scheduling, without polling: events wait in a heap by due time; due events wait per function until the
function has room (reserved concurrency, else the unreserved pool); the loop sleeps on an
``asyncio.Event`` until the next due time or until something changes. A throttle (sync traffic took the
capacity meanwhile) puts the event back after a short backoff and is not counted as an attempt.
Failures (error, timeout, out of memory, crash) are retried after ``retry_delay_s`` and then twice that,
up to MaximumRetryAttempts, unless the next attempt would be later than MaximumEventAgeInSeconds.

The same database holds the functions' EventInvokeConfigs (one writer thread for both tables).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lambdad.environments.environment import InvokeOutcome
from lambdad.http.errors import AwsError, ResourceNotFoundException
from lambdad.invoke.concurrency import Throttled
from lambdad.store import sqlite_files
from lambdad.store.base import FunctionRecord

log = logging.getLogger("lambdad.async")
T = TypeVar("T")

DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE_S = 21_600
THROTTLE_BACKOFF_S = (0.02, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invoke_configs (
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    config TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (function, qualifier)
);
"""


@dataclass
class AsyncEvent:
    """What the dispatcher keeps in memory per queued event; the payload stays on disk."""

    id: int
    request_id: str
    function: str
    qualifier: str
    received_ms: int
    due_ms: int
    attempts: int = 0
    throttles: int = 0


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite_files.connect(path, _SCHEMA, same_thread=True)


class AsyncStore:
    """``async.db``: queued events and EventInvokeConfigs, every write committed on one thread."""

    def __init__(self, path: Path) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="async-writer")
        self._conn: sqlite3.Connection = self._writer.submit(_connect, path).result()
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, self._conn)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._run(lambda conn: conn.close())
            self._writer.shutdown(wait=True)

    # --- events -----------------------------------------------------------------------------------

    async def add(self, request_id: str, function: str, qualifier: str, payload: bytes, now_ms: int) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO events (request_id, function, qualifier, payload, received_ms, due_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (request_id, function, qualifier, payload, now_ms, now_ms),
            )
            return int(cursor.lastrowid or 0)

        return await self._run(insert)

    async def payload(self, event_id: int) -> bytes | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT payload FROM events WHERE id = ?", (event_id,)).fetchone()
            return bytes(row[0]) if row else None

        return await self._run(read)

    async def reschedule(self, event_id: int, due_ms: int, attempts: int) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE events SET due_ms = ?, attempts = ? WHERE id = ?", (due_ms, attempts, event_id)
            )
        )

    async def remove(self, event_ids: list[int]) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in event_ids])
            conn.execute("COMMIT")

        await self._run(delete)

    async def backlog(self) -> list[AsyncEvent]:
        def read(conn: sqlite3.Connection) -> list[AsyncEvent]:
            rows = conn.execute(
                "SELECT id, request_id, function, qualifier, received_ms, due_ms, attempts FROM events"
            ).fetchall()
            return [AsyncEvent(*row) for row in rows]

        return await self._run(read)

    # --- EventInvokeConfigs -----------------------------------------------------------------------

    async def get_config(self, function: str, qualifier: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT config FROM invoke_configs WHERE function = ? AND qualifier = ?",
                (function, qualifier),
            ).fetchone()
            return dict(json.loads(row[0])) if row else None

        return await self._run(read)

    async def put_config(self, function: str, qualifier: str, config: dict[str, Any]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO invoke_configs (function, qualifier, config, seq) VALUES "
                "(?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM invoke_configs)) "
                "ON CONFLICT (function, qualifier) DO UPDATE SET config = excluded.config",
                (function, qualifier, json.dumps(config)),
            )

        await self._run(write)

    async def delete_config(self, function: str, qualifier: str | None) -> bool:
        """Delete one qualifier's config, or every config of the function when ``qualifier`` is None."""

        def delete(conn: sqlite3.Connection) -> bool:
            if qualifier is None:
                cursor = conn.execute("DELETE FROM invoke_configs WHERE function = ?", (function,))
            else:
                cursor = conn.execute(
                    "DELETE FROM invoke_configs WHERE function = ? AND qualifier = ?", (function, qualifier)
                )
            return cursor.rowcount > 0

        return await self._run(delete)

    async def list_configs(self, function: str) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT config FROM invoke_configs WHERE function = ? ORDER BY seq", (function,)
            ).fetchall()
            return [dict(json.loads(row[0])) for row in rows]

        return await self._run(read)


class Invoker(Protocol):
    """What the dispatcher needs of the InvokeService."""

    async def resolve_active(self, name: str, qualifier: str | None) -> FunctionRecord: ...

    async def run(
        self,
        record: FunctionRecord,
        payload: bytes,
        request_id: str,
        client_context: str | None,
        qualifier: str | None = None,
    ) -> tuple[InvokeOutcome, list[str]]: ...


class Capacity(Protocol):
    """What the dispatcher needs of the ConcurrencyLimiter."""

    account_limit: int

    def capacity(self, function: str) -> int: ...


class Metrics(Protocol):
    def record(self, name: str, dimensions: dict[str, str], value: float, unit: str) -> None: ...


@dataclass
class Result:
    """One finished event, as destinations and the DLQ see it."""

    event: AsyncEvent
    payload: bytes
    #: The last attempt's outcome; None when the event never ran (too old before its first attempt).
    outcome: InvokeOutcome | None
    executed_version: str
    condition: str  # Success | RetriesExhausted | EventAgeExceeded


#: Delivers a finished event's result (destinations, DLQ); given the event's EventInvokeConfig.
ResultHandler = Callable[[Result, dict[str, Any], FunctionRecord | None], Awaitable[None]]


class AsyncDispatcher:
    """Accepts Event invokes durably and runs them with retries; see the module docstring."""

    def __init__(
        self,
        store: AsyncStore,
        invoker: Invoker,
        limiter: Capacity,
        metrics: Metrics,
        retry_delay_s: float,
        durable: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.limiter = limiter
        self.metrics = metrics
        self.retry_delay_s = retry_delay_s
        self.on_result: ResultHandler | None = None
        self._durable = durable
        self._done: list[int] = []
        self._done_wake = asyncio.Event()
        self._forget_task: asyncio.Task[None] | None = None
        self._clock = clock
        self._events: dict[int, AsyncEvent] = {}
        self._heap: list[tuple[int, int]] = []
        self._ready: dict[str, deque[int]] = {}
        self._running: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        for event in await self.store.backlog():
            self._schedule(event)
        if self._events:
            log.info("async backlog loaded", extra={"events": len(self._events)})
        self._loop_task = asyncio.create_task(self._loop(), name="async-dispatcher")
        self._forget_task = asyncio.create_task(self._forget_loop(), name="async-forget")

    async def close(self) -> None:
        """Stop dispatching; events still running stay on disk and run again after a restart."""
        tasks = [t for t in (self._loop_task, self._forget_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._forget_done()

    @property
    def pending(self) -> int:
        return len(self._events)

    # --- accepting --------------------------------------------------------------------------------

    async def submit(self, function: str, qualifier: str | None, payload: bytes, request_id: str) -> None:
        """Commit one event; when this returns the event survives a crash."""
        now = self.now_ms()
        qualifier = qualifier or "$LATEST"
        event_id = await self.store.add(request_id, function, qualifier, payload, now)
        self.metrics.record("AsyncEventsReceived", {"FunctionName": function}, 1, "Count")
        self._schedule(AsyncEvent(event_id, request_id, function, qualifier, now, now))

    def _schedule(self, event: AsyncEvent) -> None:
        self._events[event.id] = event
        heapq.heappush(self._heap, (event.due_ms, event.id))
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            timeout = self.dispatch_due()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def dispatch_due(self) -> float | None:
        """Start every due event that has room; returns seconds until the next due time."""
        now = self.now_ms()
        while self._heap and self._heap[0][0] <= now:
            _, event_id = heapq.heappop(self._heap)
            event = self._events.get(event_id)
            if event is not None:
                self._ready.setdefault(event.function, deque()).append(event_id)
        for function in list(self._ready):
            queue = self._ready[function]
            room = max(1, self.limiter.capacity(function)) - self._running[function]
            while queue and room > 0 and sum(self._running.values()) < self.limiter.account_limit:
                self._start(self._events[queue.popleft()])
                room -= 1
            if not queue:
                del self._ready[function]
        if not self._heap:
            return None
        return max(0.0, (self._heap[0][0] - now) / 1000)

    def _start(self, event: AsyncEvent) -> None:
        self._running[event.function] += 1
        task = asyncio.get_running_loop().create_task(self._attempt(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, event: AsyncEvent) -> None:
        try:
            await self._run_once(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("async event failed unexpectedly", extra={"request_id": event.request_id})
            self._retry_at(event, self.now_ms() + int(self.retry_delay_s * 1000))
        finally:
            self._running[event.function] -= 1
            if self._running[event.function] <= 0:
                del self._running[event.function]
            self._wake.set()

    async def _run_once(self, event: AsyncEvent) -> None:
        config = await self.store.get_config(event.function, event.qualifier) or {}
        now = self.now_ms()
        dims = {"FunctionName": event.function}
        if now - event.received_ms > _max_age_ms(config):
            await self._finish(event, None, "$LATEST", "EventAgeExceeded", config, None)
            return
        payload = await self.store.payload(event.id)
        if payload is None:  # deleted meanwhile (cannot happen on one node, but never run a ghost)
            self._events.pop(event.id, None)
            return
        try:
            record = await self.invoker.resolve_active(event.function, _qualifier_arg(event.qualifier))
        except ResourceNotFoundException:
            log.warning("dropping async event of a deleted function", extra={"request_id": event.request_id})
            self.metrics.record("AsyncEventsDropped", dims, 1, "Count")
            await self._forget(event)
            return
        self.metrics.record("AsyncEventAge", dims, max(0, now - event.received_ms), "Milliseconds")
        try:
            resource = (
                f"{event.function}:{event.qualifier}" if event.qualifier not in ("", "$LATEST") else None
            )
            outcome, _ = await self.invoker.run(record, payload, event.request_id, None, resource)
        except Throttled:
            event.throttles += 1
            low, high = THROTTLE_BACKOFF_S
            self._retry_at(event, self.now_ms() + int(min(high, low * 2**event.throttles) * 1000))
            return
        except AwsError as exc:
            outcome = _error_outcome(exc)
        event.throttles = 0
        event.attempts += 1
        await self._handle(event, payload, record, outcome, config)

    async def _handle(
        self,
        event: AsyncEvent,
        payload: bytes,
        record: FunctionRecord,
        outcome: InvokeOutcome,
        config: dict[str, Any],
    ) -> None:
        if outcome.kind == "ok":
            await self._finish(event, outcome, record.version, "Success", config, record, payload)
            return
        retries = config.get("MaximumRetryAttempts", DEFAULT_RETRIES)
        if event.attempts > retries:
            await self._finish(event, outcome, record.version, "RetriesExhausted", config, record, payload)
            return
        due = self.now_ms() + int(self.retry_delay_s * 1000 * 2 ** (event.attempts - 1))
        if due - event.received_ms > _max_age_ms(config):
            await self._finish(event, outcome, record.version, "EventAgeExceeded", config, record, payload)
            return
        await self.store.reschedule(event.id, due, event.attempts)
        self._retry_at(event, due)

    def _retry_at(self, event: AsyncEvent, due_ms: int) -> None:
        event.due_ms = due_ms
        self._schedule(event)

    async def _finish(
        self,
        event: AsyncEvent,
        outcome: InvokeOutcome | None,
        version: str,
        condition: str,
        config: dict[str, Any],
        record: FunctionRecord | None,
        payload: bytes | None = None,
    ) -> None:
        if condition != "Success":
            self.metrics.record("AsyncEventsDropped", {"FunctionName": event.function}, 1, "Count")
        if self.on_result is not None:
            if payload is None:
                payload = await self.store.payload(event.id) or b"{}"
            result = Result(event, payload, outcome, version, condition)
            try:
                await self.on_result(result, config, record)
            except Exception:
                log.exception("delivering an async result failed", extra={"request_id": event.request_id})
        await self._forget(event)

    async def _forget(self, event: AsyncEvent) -> None:
        self._events.pop(event.id, None)
        self._done.append(event.id)
        self._done_wake.set()

    async def _forget_loop(self) -> None:
        while True:
            await self._done_wake.wait()
            self._done_wake.clear()
            try:
                await self._forget_done()
            except Exception:
                log.exception("removing finished async events failed")

    async def _forget_done(self) -> None:
        """Delete finished events once what their runs logged is committed."""
        done, self._done = self._done, []
        if not done:
            return
        if self._durable is not None:
            await self._durable()
        await self.store.remove(done)


def _max_age_ms(config: dict[str, Any]) -> int:
    return int(config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_S)) * 1000


def _qualifier_arg(qualifier: str) -> str | None:
    return None if qualifier == "$LATEST" else qualifier


def _error_outcome(exc: AwsError) -> InvokeOutcome:
    """An attempt the platform refused (function not Active, ...), shaped like a function error."""
    body = json.dumps({"errorMessage": exc.message, "errorType": exc.code}).encode()
    return InvokeOutcome("function_error", body, exc.code, b"", 0.0, 0, False)
