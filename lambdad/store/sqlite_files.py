"""How every SQLite file of lambdad is opened and written: one definition for all of them.

WAL journal, ``synchronous=NORMAL`` (a committed transaction survives the process being killed;
only an OS crash can lose the last ones), a busy timeout instead of immediate "database is locked",
and transactions taken with BEGIN IMMEDIATE so a writer never upgrades a read lock half-way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(
    path: Path, schema: str | None = None, *, readonly: bool = False, same_thread: bool = False
) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with lambdad's pragmas; create ``schema`` unless read-only."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    elif schema:
        conn.executescript(schema)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
