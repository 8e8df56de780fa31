"""Schedules on disk: ``<data_dir>/scheduler.db``.

``schedules`` holds each schedule's document and its next firing (``due``: the nominal occurrence,
``fire_at``: when it fires, later within a flexible window). ``firings`` is an outbox: advancing a
schedule past an occurrence and recording that occurrence's delivery happen in one transaction, so an
occurrence is fired once even across a crash, and a delivery recorded but not finished is retried
after a restart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lambdad.store import sqlite_files

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS schedules (
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    due REAL,
    fire_at REAL,
    last_fired REAL,
    PRIMARY KEY (grp, name)
);
CREATE INDEX IF NOT EXISTS schedules_fire_at ON schedules (fire_at);
CREATE TABLE IF NOT EXISTS firings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    arn TEXT NOT NULL,
    due REAL NOT NULL,
    target TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL
);
"""


@dataclass
class ScheduleRow:
    group: str
    name: str
    doc: dict[str, Any]
    due: float | None
    fire_at: float | None
    last_fired: float | None = None


@dataclass
class Firing:
    """One occurrence to deliver to a target."""

    id: int
    group: str
    name: str
    arn: str
    due: float
    target: dict[str, Any]
    attempts: int
    next_at: float


class ScheduleStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite_files.connect(path, _SCHEMA)
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on a worker thread."""
        return await asyncio.to_thread(self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock, sqlite_files.transaction(self._conn):
            result = fn(self._conn)
            return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Helpers that run inside ``ScheduleStore.run`` (on the store's thread, in its transaction).


def get_group(conn: sqlite3.Connection, name: str) -> tuple[str, float, list[Any]] | None:
    row = conn.execute("SELECT name, created, tags FROM groups WHERE name = ?", (name,)).fetchone()
    return None if row is None else (row[0], row[1], json.loads(row[2]))


def get_schedule(conn: sqlite3.Connection, group: str, name: str) -> ScheduleRow | None:
    row = conn.execute(
        "SELECT grp, name, doc, due, fire_at, last_fired FROM schedules WHERE grp = ? AND name = ?",
        (group, name),
    ).fetchone()
    return None if row is None else ScheduleRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5])


def put_schedule(conn: sqlite3.Connection, row: ScheduleRow) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO schedules (grp, name, doc, due, fire_at, last_fired) VALUES (?, ?, ?, ?, ?, ?)",
        (row.group, row.name, json.dumps(row.doc), row.due, row.fire_at, row.last_fired),
    )


def list_schedules(conn: sqlite3.Connection) -> list[ScheduleRow]:
    rows = conn.execute(
        "SELECT grp, name, doc, due, fire_at, last_fired FROM schedules ORDER BY grp, name"
    ).fetchall()
    return [ScheduleRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]


def due_schedules(conn: sqlite3.Connection, now: float) -> list[ScheduleRow]:
    rows = conn.execute(
        "SELECT grp, name, doc, due, fire_at, last_fired FROM schedules WHERE fire_at <= ? ORDER BY fire_at",
        (now,),
    ).fetchall()
    return [ScheduleRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]


def next_wakeup(conn: sqlite3.Connection, busy: set[int]) -> float | None:
    """The earliest fire_at of a schedule or next_at of a delivery not ``busy`` (in flight)."""
    times = [conn.execute("SELECT min(fire_at) FROM schedules").fetchone()[0]]
    for firing_id, next_at in conn.execute("SELECT id, next_at FROM firings"):
        if firing_id not in busy:
            times.append(next_at)
    known = [float(t) for t in times if t is not None]
    return min(known) if known else None


def add_firing(conn: sqlite3.Connection, row: ScheduleRow, arn: str, due: float, now: float) -> None:
    conn.execute(
        "INSERT INTO firings (grp, name, arn, due, target, next_at) VALUES (?, ?, ?, ?, ?, ?)",
        (row.group, row.name, arn, due, json.dumps(row.doc["Target"]), now),
    )


def pending_firings(conn: sqlite3.Connection, now: float) -> list[Firing]:
    rows = conn.execute(
        "SELECT id, grp, name, arn, due, target, attempts, next_at FROM firings WHERE next_at <= ? ORDER BY id",
        (now,),
    ).fetchall()
    return [Firing(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]
