"""The firing loop: advance due schedules (once per occurrence, durably) and deliver to targets.

Each tick, in one transaction per tick, every schedule whose ``fire_at`` has passed is advanced to
its next occurrence and an outbox row (``firings``) is written per occurrence fired. Occurrences
missed while the server was down fire if they are at most ``grace_s`` old; older ones are skipped.
Deliveries then run from the outbox: a failed one is retried with backoff within the target's
RetryPolicy, then sent to its dead-letter queue; a delivery is removed from the outbox once done.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from lambdad.events.scheduler import store as db
from lambdad.events.scheduler.expressions import Schedule, parse

log = logging.getLogger("lambdad.scheduler")

GRACE_S = 900.0
MAX_SLEEP_S = 30.0
DEFAULT_RETRIES = 185
DEFAULT_MAX_AGE_S = 86_400
MAX_BACKOFF_S = 60.0


class DeliveryError(Exception):
    """A target could not be reached; ``code`` is what the dead-letter message reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Deliver = Callable[[db.Firing], Awaitable[None]]
DeadLetter = Callable[[db.Firing, DeliveryError], Awaitable[None]]


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def advance(
    schedule: Schedule, due: float, fire_at: float, now: float, grace_s: float, end: float | None
) -> tuple[list[float], float | None]:
    """The occurrences to fire at ``now`` (nominal times) and the next nominal occurrence."""
    fires: list[float] = []
    nominal: float | None = due
    when = fire_at
    while nominal is not None and when <= now:
        if now - when <= grace_s:
            fires.append(nominal)
        # Skip straight past occurrences too old to fire (a long downtime with a fast rate).
        after = max(nominal, now - grace_s) if nominal < now - grace_s else nominal
        following = schedule.next_after(_dt(after))
        nominal = following.timestamp() if following is not None else None
        if nominal is not None and end is not None and not schedule.one_time and nominal >= end:
            nominal = None
        when = nominal if nominal is not None else when
    return fires, nominal


def schedule_of(doc: dict[str, Any]) -> Schedule:
    anchor = doc.get("_Anchor")
    return parse(
        doc["ScheduleExpression"],
        doc.get("ScheduleExpressionTimezone") or "UTC",
        _dt(anchor) if anchor is not None else None,
    )


def first_due(doc: dict[str, Any], now: float) -> float | None:
    """The first occurrence of a newly created, updated or enabled schedule."""
    schedule = schedule_of(doc)
    start = doc.get("StartDate")
    after = now if schedule.one_time or start is None else max(now, float(start) - 1e-6)
    following = schedule.next_after(_dt(after))
    if following is None:
        return None
    end = doc.get("EndDate")
    if end is not None and not schedule.one_time and following.timestamp() >= float(end):
        return None
    return following.timestamp()


def jitter(doc: dict[str, Any], due: float, rng: Callable[[], float]) -> float:
    """When to fire an occurrence: at once, or at a random point of the flexible window."""
    window = doc.get("FlexibleTimeWindow") or {}
    if window.get("Mode") != "FLEXIBLE":
        return due
    return due + rng() * 60.0 * float(window.get("MaximumWindowInMinutes") or 0)


class FiringLoop:
    """Fires due schedules and delivers their events."""

    def __init__(
        self,
        store: db.ScheduleStore,
        deliver: Deliver,
        dead_letter: DeadLetter,
        clock: Callable[[], float] = time.time,
        grace_s: float = GRACE_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self._deliver = deliver
        self._dead_letter = dead_letter
        self._clock = clock
        self.grace_s = grace_s
        self.rng = rng
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduler")

    async def close(self) -> None:
        tasks = [t for t in [self._task, *self._in_flight.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                wakeup = await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
                wakeup = self._clock() + 1.0
            delay = MAX_SLEEP_S if wakeup is None else min(MAX_SLEEP_S, max(0.01, wakeup - self._clock()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def tick(self) -> float | None:
        """Fire what is due, start deliveries; return when something next becomes due."""
        now = self._clock()
        firings = await self.store.run(lambda conn: self._fire_due(conn, now))
        for firing in firings:
            if firing.id not in self._in_flight:
                task = asyncio.get_running_loop().create_task(self._dispatch(firing))
                self._in_flight[firing.id] = task
                task.add_done_callback(self._forget(firing.id))
        busy = set(self._in_flight)
        return await self.store.run(lambda conn: db.next_wakeup(conn, busy))

    def _forget(self, firing_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._in_flight.pop(firing_id, None)

        return forget

    def _fire_due(self, conn: sqlite3.Connection, now: float) -> list[db.Firing]:
        for row in db.due_schedules(conn, now):
            self._fire_one(conn, row, now)
        return db.pending_firings(conn, now)

    def _fire_one(self, conn: sqlite3.Connection, row: db.ScheduleRow, now: float) -> None:
        assert row.due is not None and row.fire_at is not None
        schedule = schedule_of(row.doc)
        end = row.doc.get("EndDate")
        fires, following = advance(schedule, row.due, row.fire_at, now, self.grace_s, end)
        for due in fires:
            db.add_firing(conn, row, row.doc["Arn"], due, now)
            row.last_fired = due
        if following is None and row.doc.get("ActionAfterCompletion") == "DELETE":
            conn.execute("DELETE FROM schedules WHERE grp = ? AND name = ?", (row.group, row.name))
            return
        row.due = following
        row.fire_at = None if following is None else jitter(row.doc, following, self.rng)
        db.put_schedule(conn, row)

    async def _dispatch(self, firing: db.Firing) -> None:
        try:
            await self._deliver(firing)
        except DeliveryError as error:
            await self._failed(firing, error)
            return
        except Exception:
            log.exception("scheduler delivery failed", extra={"schedule": firing.name})
            await self._failed(firing, DeliveryError("InternalError", "delivery failed"))
            return
        await self.store.run(lambda conn: conn.execute("DELETE FROM firings WHERE id = ?", (firing.id,)))

    async def _failed(self, firing: db.Firing, error: DeliveryError) -> None:
        policy = firing.target.get("RetryPolicy") or {}
        retries = int(policy.get("MaximumRetryAttempts", DEFAULT_RETRIES))
        max_age = float(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_S))
        now = self._clock()
        attempts = firing.attempts + 1
        if attempts > retries or now + _backoff(attempts) - firing.due > max_age:
            if firing.target.get("DeadLetterConfig", {}).get("Arn"):
                try:
                    await self._dead_letter(firing, error)
                except Exception:
                    log.exception("sending to the schedule's dead-letter queue failed")
            await self.store.run(lambda conn: conn.execute("DELETE FROM firings WHERE id = ?", (firing.id,)))
            return
        await self.store.run(
            lambda conn: conn.execute(
                "UPDATE firings SET attempts = ?, next_at = ? WHERE id = ?",
                (attempts, now + _backoff(attempts), firing.id),
            )
        )
        self.wake()


def _backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF_S, 2 ** (attempts - 1)))


def occurrences(schedule: Schedule, after: datetime, count: int) -> Sequence[datetime]:
    """The next ``count`` occurrences (for tests and diagnostics)."""
    out: list[datetime] = []
    moment: datetime | None = after
    while moment is not None and len(out) < count:
        moment = schedule.next_after(moment)
        if moment is not None:
            out.append(moment)
    return out
