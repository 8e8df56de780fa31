"""Event source mappings on disk: ``<data_dir>/mappings.db``, one JSON document per mapping.

Mappings are few and change rarely, so the store keeps them as whole documents keyed by UUID and
filters in Python; every write is its own committed transaction (WAL).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdad.store import sqlite_files

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mappings (
    uuid TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    config TEXT NOT NULL
);
"""


@dataclass
class MappingRecord:
    """A mapping: what the API shows (``config``) and whether the user wants it polling."""

    uuid: str
    enabled: bool
    config: dict[str, Any]


class MappingStore:
    """SQLite-backed mapping documents; calls run on a worker thread."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite_files.connect(path, _SCHEMA)
        self._lock = threading.Lock()

    def _all(self) -> list[MappingRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT uuid, enabled, config FROM mappings ORDER BY uuid").fetchall()
        return [MappingRecord(r[0], bool(r[1]), json.loads(r[2])) for r in rows]

    def _put(self, record: MappingRecord) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO mappings (uuid, enabled, config) VALUES (?, ?, ?)",
                (record.uuid, int(record.enabled), json.dumps(record.config)),
            )

    def _delete(self, uuid: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM mappings WHERE uuid = ?", (uuid,))

    async def all(self) -> list[MappingRecord]:
        return await asyncio.to_thread(self._all)

    async def get(self, uuid: str) -> MappingRecord | None:
        return next((r for r in await self.all() if r.uuid == uuid), None)

    async def put(self, record: MappingRecord) -> None:
        await asyncio.to_thread(self._put, record)

    async def delete(self, uuid: str) -> None:
        await asyncio.to_thread(self._delete, uuid)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
