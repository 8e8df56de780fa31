"""SQLite implementation of the store (WAL mode, one writer thread).

All statements run on one dedicated thread so the event loop never blocks on disk and SQLite sees a
single connection; WAL plus ``synchronous=NORMAL`` survives a process kill without losing a
committed transaction (only an OS crash can lose the last ones, as SQLite documents).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lambdad.store.base import ConflictError, FunctionRecord

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    config TEXT NOT NULL,
    code_sha TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    reserved_concurrency INTEGER,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Control-plane resources kept as AWS-shaped JSON documents, one table each, keyed by (scope, key):
#: aliases (function, alias name), policies (function, qualifier), url_configs (function, qualifier),
#: provisioned (function, qualifier), layer_versions (layer name, version number).
RESOURCE_TABLES = ("aliases", "policies", "url_configs", "provisioned", "layer_versions")
_SCHEMA += "".join(
    f"CREATE TABLE IF NOT EXISTS {table} (scope TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, "
    "PRIMARY KEY (scope, key));\n"
    for table in RESOURCE_TABLES
)


class SqliteStore:
    """The embedded store: one file, ``lambdad.db``, in the data directory."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._executor.submit(self._open).result()

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None, "store is closed"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, conn)

    @staticmethod
    def _row(row: tuple[str, str, str, str, str, int | None]) -> FunctionRecord:
        name, version, config, code_sha, tags, reserved = row
        return FunctionRecord(name, version, json.loads(config), code_sha, json.loads(tags), reserved)

    @staticmethod
    def _values(r: FunctionRecord) -> tuple[object, ...]:
        size = int(r.config.get("CodeSize", 0))
        return (
            r.name,
            r.version,
            json.dumps(r.config),
            r.code_sha,
            size,
            json.dumps(r.tags),
            r.reserved_concurrency,
        )

    async def create_function(self, record: FunctionRecord) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("INSERT INTO functions VALUES (?,?,?,?,?,?,?)", self._values(record))
            except sqlite3.IntegrityError as exc:
                raise ConflictError(record.name) from exc

        await self._run(insert)

    async def put_function(self, record: FunctionRecord) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO functions VALUES (?,?,?,?,?,?,?)", self._values(record)
            )
        )

    async def get_function(self, name: str, version: str = "$LATEST") -> FunctionRecord | None:
        def select(conn: sqlite3.Connection) -> FunctionRecord | None:
            row = conn.execute(
                "SELECT name, version, config, code_sha, tags, reserved_concurrency FROM functions "
                "WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
            return None if row is None else self._row(row)

        return await self._run(select)

    async def delete_function(self, name: str) -> list[str]:
        def delete(conn: sqlite3.Connection) -> list[str]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                shas = {r[0] for r in conn.execute("SELECT code_sha FROM functions WHERE name = ?", (name,))}
                conn.execute("DELETE FROM functions WHERE name = ?", (name,))
                conn.execute("DELETE FROM meta WHERE key = ?", (f"last-version:{name}",))
                for table in RESOURCE_TABLES[:-1]:  # everything scoped by function, not layers
                    conn.execute(f"DELETE FROM {table} WHERE scope = ?", (name,))
                still = {r[0] for r in conn.execute("SELECT DISTINCT code_sha FROM functions")}
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return sorted(shas - still)

        return await self._run(delete)

    async def code_in_use(self, code_sha: str) -> bool:
        def query(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute("SELECT 1 FROM functions WHERE code_sha = ? LIMIT 1", (code_sha,)).fetchone()
                is not None
            )

        return await self._run(query)

    async def list_functions(self, after: str | None, limit: int) -> list[FunctionRecord]:
        def select(conn: sqlite3.Connection) -> list[FunctionRecord]:
            rows = conn.execute(
                "SELECT name, version, config, code_sha, tags, reserved_concurrency FROM functions "
                "WHERE version = '$LATEST' AND name > ? ORDER BY name LIMIT ?",
                (after or "", limit),
            ).fetchall()
            return [self._row(r) for r in rows]

        return await self._run(select)

    async def function_stats(self) -> tuple[int, int]:
        def stats(conn: sqlite3.Connection) -> tuple[int, int]:
            count = conn.execute("SELECT COUNT(DISTINCT name) FROM functions").fetchone()[0]
            size = conn.execute("SELECT COALESCE(SUM(code_size), 0) FROM functions").fetchone()[0]
            return int(count), int(size)

        return await self._run(stats)

    async def list_versions(self, name: str) -> list[FunctionRecord]:
        def select(conn: sqlite3.Connection) -> list[FunctionRecord]:
            rows = conn.execute(
                "SELECT name, version, config, code_sha, tags, reserved_concurrency FROM functions "
                "WHERE name = ? ORDER BY version != '$LATEST', CAST(version AS INTEGER)",
                (name,),
            ).fetchall()
            return [self._row(r) for r in rows]

        return await self._run(select)

    async def next_version(self, name: str) -> str:
        def allocate(conn: sqlite3.Connection) -> str:
            key = f"last-version:{name}"
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                number = int(row[0]) + 1 if row else 1
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(number)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return str(number)

        return await self._run(allocate)

    async def delete_version(self, name: str, version: str) -> list[str]:
        def delete(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute(
                "SELECT code_sha FROM functions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            conn.execute("DELETE FROM functions WHERE name = ? AND version = ?", (name, version))
            if row is None:
                return []
            used = conn.execute("SELECT 1 FROM functions WHERE code_sha = ? LIMIT 1", (row[0],)).fetchone()
            return [] if used else [row[0]]

        return await self._run(delete)

    async def create_doc(self, table: str, scope: str, key: str, doc: dict[str, Any]) -> None:
        _check_table(table)

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"INSERT INTO {table} VALUES (?,?,?)", (scope, key, json.dumps(doc)))
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"{scope}:{key}") from exc

        await self._run(insert)

    async def put_doc(self, table: str, scope: str, key: str, doc: dict[str, Any]) -> None:
        _check_table(table)
        await self._run(
            lambda c: c.execute(
                f"INSERT OR REPLACE INTO {table} VALUES (?,?,?)", (scope, key, json.dumps(doc))
            )
        )

    async def get_doc(self, table: str, scope: str, key: str) -> dict[str, Any] | None:
        _check_table(table)

        def select(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                f"SELECT doc FROM {table} WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._run(select)

    async def list_docs(self, table: str, scope: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        _check_table(table)

        def select(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
            if scope is None:
                rows = conn.execute(f"SELECT scope, key, doc FROM {table} ORDER BY scope, key").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT scope, key, doc FROM {table} WHERE scope = ? ORDER BY key", (scope,)
                ).fetchall()
            return [(r[0], r[1], dict(json.loads(r[2]))) for r in rows]

        return await self._run(select)

    async def delete_doc(self, table: str, scope: str, key: str | None = None) -> int:
        _check_table(table)

        def delete(conn: sqlite3.Connection) -> int:
            if key is None:
                return conn.execute(f"DELETE FROM {table} WHERE scope = ?", (scope,)).rowcount
            return conn.execute(f"DELETE FROM {table} WHERE scope = ? AND key = ?", (scope, key)).rowcount

        return await self._run(delete)

    async def close(self) -> None:
        def close(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(close)
            self._conn = None
        self._executor.shutdown(wait=True)


def _check_table(table: str) -> None:
    """Table names are interpolated into SQL, so only the known ones pass."""
    if table not in RESOURCE_TABLES:
        raise ValueError(f"unknown resource table: {table!r}")
