"""Log groups, streams and events in SQLite, with CloudWatch Logs' semantics.

Functions' output reaches the store through ``append``, which only buffers in memory: the invoke
path never waits on a disk write. A background task writes the buffer in one transaction every
~100 ms (sooner when 1000 events are pending), creating groups and streams on first write, as
Lambda does with ``/aws/lambda/<name>``. All writes run on one thread with one connection (SQLite
has one writer anyway); reads run on a second thread with its own connection, which WAL lets read
while a batch is being written. The writer thread runs at a lower priority while it keeps up (see
``WriterPriority``), and inserts a batch's rows a chunk per statement.

Events are ordered by (timestamp, rowid). GetLogEvents' tokens are cursors between two events,
spelled like AWS's (``f/<56 digits>/s``): the event key just after the cursor, so a forward token
read again when nothing is new comes back unchanged, as AWS documents.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import os
import re
import resource
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lambdad import tasks
from lambdad.http.errors import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from lambdad.observe.filter_pattern import Matcher, compile_pattern
from lambdad.store import sqlite_files

log = logging.getLogger("lambdad.logs")
T = TypeVar("T")
Json = dict[str, Any]
Key = tuple[int, int]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip
FLUSH_INTERVAL_S = 0.1
FLUSH_THRESHOLD = 1000
#: Past this many buffered events (a disk far slower than the functions) new ones are dropped, counted.
MAX_BUFFERED = 500_000
#: The writer thread's nice value while it keeps up. Storing log lines is background work: on a
#: 2-CPU machine under 32-connection load, the writer at nice 0 took 4-11% of the invoke throughput
#: from the event loop's thread (A/B in alternating rounds, docs/performance.md).
WRITER_NICE = 10
#: A batch this large (about 3 s of log lines at 2,000 invokes/s) means the writer has fallen
#: behind: it is written at normal priority, so a busy machine cannot starve log storage.
CATCH_UP_EVENTS = 20_000
#: Rows per INSERT statement: 128 rows of 5 values stay under SQLite's oldest parameter limit (999).
INSERT_CHUNK = 128
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD = 26
#: Rows one FilterLogEvents call examines before answering with what it has and a nextToken, as AWS does.
SCAN_BUDGET = 200_000
SCAN_CHUNK = 2_000
TOO_OLD_MS = 14 * DAY_MS
TOO_NEW_MS = 2 * HOUR_MS

_GROUP_MISSING = "The specified log group does not exist."
_STREAM_MISSING = "The specified log stream does not exist."
_BAD_TOKEN = "The specified nextToken is invalid."
_EVENT_TOKEN = re.compile(r"^([fb])/(\d{20})(\d{36})/s$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    retention INTEGER,
    class TEXT NOT NULL DEFAULT 'STANDARD',
    stored_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    first_ts INTEGER,
    last_ts INTEGER,
    last_ingest INTEGER,
    seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_id, name)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL,
    stream_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    ingest INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (stream_id, ts, id);
CREATE INDEX IF NOT EXISTS events_by_group ON events (group_id, ts, id);
"""


class WriterPriority:
    """The log writer thread's scheduling priority: WRITER_NICE while batches are small, normal for a
    batch that shows a backlog. Made and used on the writer thread: on Linux a thread's nice value
    is its own. It stays at normal priority where it could not be raised back (neither root nor an
    RLIMIT_NICE that allows it), so that lowering it can never become permanent."""

    def __init__(self) -> None:
        self.nice = os.getpriority(os.PRIO_PROCESS, 0)
        self.enabled = self.nice == 0 and _may_raise_priority()

    def before_batch(self, events: int) -> None:
        if not self.enabled:
            return
        wanted = 0 if events >= CATCH_UP_EVENTS else WRITER_NICE
        if wanted != self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, wanted)
            except OSError as exc:  # only if the server lost its privileges since it started
                log.warning(
                    "cannot change the log writer's priority", extra={"nice": wanted, "error": str(exc)}
                )
                self.enabled = False
                return
            self.nice = wanted


def _may_raise_priority() -> bool:
    if os.geteuid() == 0:
        return True
    soft = resource.getrlimit(resource.RLIMIT_NICE)[0]
    return soft == resource.RLIM_INFINITY or soft >= 20  # the ceiling is 20 - soft


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    return sqlite_files.connect(path, _SCHEMA, readonly=readonly, same_thread=True)


def _size(message: str) -> int:
    return len(message.encode("utf-8", "surrogatepass"))


def encode_token(value: Any) -> str:
    """An opaque pagination token (the caller must not read it; we must read it back)."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error) as exc:
        raise InvalidParameterException(_BAD_TOKEN) from exc


def event_token(direction: str, key: Key) -> str:
    return f"{direction}/{key[0]:020d}{key[1]:036d}/s"


def parse_event_token(token: str) -> tuple[str, Key]:
    m = _EVENT_TOKEN.match(token)
    if m is None:
        raise InvalidParameterException(_BAD_TOKEN)
    return m.group(1), (int(m.group(2)), int(m.group(3)))


def _key_after(ts: int, event_id: int) -> Key:
    """The cursor just after event (ts, id): every later event's key is >= it."""
    return ts, event_id + 1


def _sequence_token(seq: int) -> str:
    return f"49{seq:054d}"


class LogStore:
    """The log store of one node: ``<data_dir>/logs.db``."""

    def __init__(
        self,
        path: Path,
        region: str,
        account: str,
        clock: Callable[[], float] = time.time,
        purge_interval_s: float = 600.0,
    ) -> None:
        self._path = path
        self._arn_prefix = f"arn:aws:logs:{region}:{account}:log-group:"
        self._clock = clock
        self._purge_interval_s = purge_interval_s
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs-reader")
        self._wconn: sqlite3.Connection = self._writer.submit(_connect, path, False).result()
        self._priority: WriterPriority = self._writer.submit(WriterPriority).result()
        self._rconn: sqlite3.Connection = self._reader.submit(_connect, path, True).result()
        #: (group, stream) -> (group id, stream id); touched only on the writer thread.
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}
        self._pending: list[tuple[str, str, int, str]] = []
        self._dropped = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- life cycle -------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._background(), name="logstore-flush")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await tasks.stop(self._task)
        await self.flush()
        await self._write(lambda conn: conn.close())
        await self._read(lambda conn: conn.close())
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    async def _background(self) -> None:
        assert self._wake is not None
        last_purge = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() - last_purge >= self._purge_interval_s:
                    last_purge = time.monotonic()
                    await self.purge_expired()
            except Exception:
                log.exception("writing log events failed")

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, self._wconn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, self._rconn)

    # --- the hot path -----------------------------------------------------------------------------

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Buffer events (epoch ms, message) for the next flush; never blocks. Call on the loop's thread."""
        room = MAX_BUFFERED - len(self._pending)
        if room < len(events):
            self._dropped += len(events) - max(room, 0)
            events = events[: max(room, 0)]
        self._pending.extend((group, stream, ts, message) for ts, message in events)
        if len(self._pending) >= FLUSH_THRESHOLD and self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything appended so far; returns once it is committed."""
        batch, self._pending = self._pending, []
        if self._dropped:
            log.warning("log buffer full; dropped events", extra={"dropped": self._dropped})
            self._dropped = 0
        if batch:
            # Swapping and submitting with no await between keeps batches in append order.
            await self._write(lambda conn: self._write_batch(conn, batch))

    def _write_batch(self, conn: sqlite3.Connection, batch: list[tuple[str, str, int, str]]) -> None:
        self._priority.before_batch(len(batch))
        by_stream: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for group, stream, ts, message in batch:
            by_stream[group, stream].append((ts, message))
        now = self.now_ms()
        with _transaction(conn):
            for (group, stream), events in by_stream.items():
                group_id, stream_id = self._ensure_stream(conn, group, stream, now)
                _insert_events(conn, group_id, stream_id, events, now)

    def _ensure_stream(self, conn: sqlite3.Connection, group: str, stream: str, now: int) -> tuple[int, int]:
        ids = self._ids.get((group, stream))
        if ids is None:
            conn.execute("INSERT OR IGNORE INTO groups (name, created) VALUES (?, ?)", (group, now))
            group_id = conn.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()[0]
            conn.execute(
                "INSERT OR IGNORE INTO streams (group_id, name, created) VALUES (?, ?, ?)",
                (group_id, stream, now),
            )
            stream_id = conn.execute(
                "SELECT id FROM streams WHERE group_id = ? AND name = ?", (group_id, stream)
            ).fetchone()[0]
            ids = self._ids[group, stream] = (group_id, stream_id)
        return ids

    def _forget(self, group: str, stream: str | None = None) -> None:
        for key in [k for k in self._ids if k[0] == group and (stream is None or k[1] == stream)]:
            del self._ids[key]

    # --- groups -----------------------------------------------------------------------------------

    def group_arn(self, name: str) -> str:
        return f"{self._arn_prefix}{name}:*"

    def group_name(self, name: str | None, identifier: str | None) -> str:
        """The group named by ``logGroupName`` or ``logGroupIdentifier`` (a name or an ARN)."""
        if name and identifier:
            raise InvalidParameterException(
                "LogGroup name and LogGroup ARN are mutually exclusive parameters."
            )
        if identifier:
            if identifier.startswith("arn:"):
                _, _, rest = identifier.partition(":log-group:")
                return rest.removesuffix(":*")
            return identifier
        if not name:
            raise InvalidParameterException("Either logGroupName or logGroupIdentifier must be specified.")
        return name

    async def create_log_group(self, name: str, log_group_class: str | None = None) -> None:
        def create(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO groups (name, created, class) VALUES (?, ?, ?)",
                    (name, self.now_ms(), log_group_class or "STANDARD"),
                )
            except sqlite3.IntegrityError as exc:
                raise ResourceAlreadyExistsException("The specified log group already exists") from exc

        await self._write(create)

    async def delete_log_group(self, name: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                group_id = _group_id(conn, name)
                conn.execute("DELETE FROM events WHERE group_id = ?", (group_id,))
                conn.execute("DELETE FROM streams WHERE group_id = ?", (group_id,))
                conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))
            self._forget(name)

        await self._write(delete)

    async def put_retention_policy(self, name: str, days: int) -> None:
        if days not in RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in RETENTION_DAYS)
            raise InvalidParameterException(
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
                f"constraint: Member must satisfy enum value set: [{allowed}]"
            )
        await self._set_retention(name, days)

    async def delete_retention_policy(self, name: str) -> None:
        await self._set_retention(name, None)

    async def _set_retention(self, name: str, days: int | None) -> None:
        def update(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE groups SET retention = ? WHERE name = ?", (days, name)).rowcount == 0:
                raise ResourceNotFoundException(_GROUP_MISSING)

        await self._write(update)

    async def describe_log_groups(
        self, prefix: str | None, pattern: str | None, token: str | None, limit: int | None
    ) -> Json:
        if prefix and pattern is not None:
            raise InvalidParameterException(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
            )
        after = str(decode_token(token)) if token else ""
        limit = limit or 50
        sql = "SELECT name, created, retention, class, stored_bytes FROM groups WHERE name > ?"
        args: list[Any] = [after]
        if prefix:
            sql += " AND substr(name, 1, ?) = ?"
            args += [len(prefix), prefix]
        if pattern:
            sql += " AND instr(lower(name), lower(?)) > 0"
            args.append(pattern)
        sql += " ORDER BY name LIMIT ?"
        args.append(limit + 1)
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        out: Json = {"logGroups": [self._group_json(*row) for row in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = encode_token(rows[limit - 1][0])
        return out

    def _group_json(self, name: str, created: int, retention: int | None, cls: str, stored: int) -> Json:
        group: Json = {"logGroupName": name, "creationTime": created}
        if retention is not None:
            group["retentionInDays"] = retention
        group.update(
            metricFilterCount=0,
            arn=self.group_arn(name),
            storedBytes=stored,
            logGroupClass=cls,
            logGroupArn=self.group_arn(name).removesuffix(":*"),
        )
        return group

    # --- streams ----------------------------------------------------------------------------------

    async def create_log_stream(self, group: str, stream: str) -> None:
        def create(conn: sqlite3.Connection) -> None:
            group_id = _group_id(conn, group)
            try:
                conn.execute(
                    "INSERT INTO streams (group_id, name, created) VALUES (?, ?, ?)",
                    (group_id, stream, self.now_ms()),
                )
            except sqlite3.IntegrityError as exc:
                raise ResourceAlreadyExistsException("The specified log stream already exists") from exc

        await self._write(create)

    async def delete_log_stream(self, group: str, stream: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _, stream_id = _stream_id(conn, group, stream)
                conn.execute("DELETE FROM events WHERE stream_id = ?", (stream_id,))
                conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
            self._forget(group, stream)

        await self._write(delete)

    async def describe_log_streams(
        self,
        group: str,
        prefix: str | None,
        order_by: str | None,
        descending: bool,
        token: str | None,
        limit: int | None,
    ) -> Json:
        by_time = order_by == "LastEventTime"
        if by_time and prefix:
            raise InvalidParameterException("Cannot order by LastEventTime with a logStreamNamePrefix.")
        limit = limit or 50
        after = decode_token(token) if token else None

        def select(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql, args = _streams_query(_group_id(conn, group), prefix, by_time, descending, after, limit + 1)
            return conn.execute(sql, args).fetchall()

        rows = await self._read(select)
        out: Json = {"logStreams": [self._stream_json(group, row) for row in rows[:limit]]}
        if len(rows) > limit:
            last = rows[limit - 1]
            out["nextToken"] = encode_token([last[3] or 0, last[0]] if by_time else [last[0]])
        return out

    def _stream_json(self, group: str, row: tuple[Any, ...]) -> Json:
        name, created, first_ts, last_ts, last_ingest, seq = row
        stream: Json = {"logStreamName": name, "creationTime": created}
        if first_ts is not None:
            stream.update(
                firstEventTimestamp=first_ts, lastEventTimestamp=last_ts, lastIngestionTime=last_ingest
            )
        stream["uploadSequenceToken"] = _sequence_token(seq)
        stream["arn"] = f"{self._arn_prefix}{group}:log-stream:{name}"
        # AWS stopped reporting stream sizes in 2019 and always sends zero.
        stream["storedBytes"] = 0
        return stream

    # --- events -----------------------------------------------------------------------------------

    async def put_log_events(self, group: str, stream: str, events: Sequence[Mapping[str, Any]]) -> Json:
        batch = [(int(e["timestamp"]), str(e["message"])) for e in events]
        _check_batch(batch)
        now = self.now_ms()

        def put(conn: sqlite3.Connection) -> Json:
            with _transaction(conn):
                group_id, stream_id = _stream_id(conn, group, stream)
                retention = conn.execute("SELECT retention FROM groups WHERE id = ?", (group_id,)).fetchone()[
                    0
                ]
                accepted, rejected = _split_rejected(batch, now, retention)
                _insert_events(conn, group_id, stream_id, accepted, now)
                conn.execute("UPDATE streams SET seq = seq + 1 WHERE id = ?", (stream_id,))
                seq = conn.execute("SELECT seq FROM streams WHERE id = ?", (stream_id,)).fetchone()[0]
            out: Json = {"nextSequenceToken": _sequence_token(seq)}
            if rejected:
                out["rejectedLogEventsInfo"] = rejected
            return out

        return await self._write(put)

    async def get_log_events(
        self,
        group: str,
        stream: str,
        start: int | None,
        end: int | None,
        token: str | None,
        limit: int | None,
        start_from_head: bool,
    ) -> Json:
        direction, cursor = parse_event_token(token) if token else ("f" if start_from_head else "", None)
        limit = limit or 10_000

        def select(conn: sqlite3.Connection) -> list[tuple[int, int, int, str]]:
            _, stream_id = _stream_id(conn, group, stream)
            return _stream_events(conn, stream_id, start, end, direction, cursor, limit)

        rows = _within_bytes(await self._read(select))
        if direction != "f":
            rows.reverse()
        events = [{"timestamp": ts, "message": msg, "ingestionTime": ing} for _, ts, ing, msg in rows]
        if rows:
            forward, backward = _key_after(rows[-1][1], rows[-1][0]), (rows[0][1], rows[0][0])
        else:
            forward = backward = cursor or (0, 0)
        return {
            "events": events,
            "nextForwardToken": event_token("f", forward),
            "nextBackwardToken": event_token("b", backward),
        }

    async def filter_log_events(
        self,
        group: str,
        stream_names: Sequence[str] | None,
        stream_prefix: str | None,
        start: int | None,
        end: int | None,
        pattern: str | None,
        token: str | None,
        limit: int | None,
    ) -> Json:
        if stream_names and stream_prefix:
            raise InvalidParameterException(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."
            )
        matcher = compile_pattern(pattern)
        cursor = _filter_cursor(token, start)
        scan = _FilterScan(matcher, start, end, limit or 10_000)

        def run(conn: sqlite3.Connection) -> Json:
            group_id = _group_id(conn, group)
            stream_ids = _matching_streams(conn, group_id, stream_names, stream_prefix)
            return scan.run(conn, group_id, stream_ids, cursor)

        return await self._read(run)

    # --- retention --------------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete events older than their group's retention; returns how many were deleted."""
        now = self.now_ms()

        def purge(conn: sqlite3.Connection) -> int:
            deleted = 0
            groups = conn.execute("SELECT id, retention FROM groups WHERE retention IS NOT NULL").fetchall()
            for group_id, days in groups:
                with _transaction(conn):
                    cutoff = now - days * DAY_MS
                    cur = conn.execute("DELETE FROM events WHERE group_id = ? AND ts < ?", (group_id, cutoff))
                    if cur.rowcount:
                        deleted += cur.rowcount
                        _recount(conn, group_id)
            return deleted

        return await self._write(purge)


# --- helpers run on the store's threads -----------------------------------------------------------


_transaction = sqlite_files.transaction


def _group_id(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM groups WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ResourceNotFoundException(_GROUP_MISSING)
    return int(row[0])


def _stream_id(conn: sqlite3.Connection, group: str, stream: str) -> tuple[int, int]:
    group_id = _group_id(conn, group)
    row = conn.execute(
        "SELECT id FROM streams WHERE group_id = ? AND name = ?", (group_id, stream)
    ).fetchone()
    if row is None:
        raise ResourceNotFoundException(_STREAM_MISSING)
    return group_id, int(row[0])


def _insert_events(
    conn: sqlite3.Connection, group_id: int, stream_id: int, events: Sequence[tuple[int, str]], now: int
) -> None:
    if not events:
        return
    _insert_rows(conn, group_id, stream_id, events, now)
    first = min(ts for ts, _ in events)
    last = max(ts for ts, _ in events)
    conn.execute(
        "UPDATE streams SET first_ts = min(coalesce(first_ts, ?), ?), last_ts = max(coalesce(last_ts, ?), ?),"
        " last_ingest = ? WHERE id = ?",
        (first, first, last, last, now, stream_id),
    )
    size = sum(_size(message) for _, message in events)
    conn.execute("UPDATE groups SET stored_bytes = stored_bytes + ? WHERE id = ?", (size, group_id))


def _insert_rows(
    conn: sqlite3.Connection, group_id: int, stream_id: int, events: Sequence[tuple[int, str]], now: int
) -> None:
    """Insert event rows a chunk per statement: executemany steps once per row. Chunks come in
    power-of-two sizes, so the few statement texts stay in the connection's statement cache."""
    start = 0
    while start < len(events):
        size = min(INSERT_CHUNK, 1 << ((len(events) - start).bit_length() - 1))
        values: list[int | str] = []
        for ts, message in events[start : start + size]:
            values += (group_id, stream_id, ts, now, message)
        conn.execute(_insert_sql(size), values)
        start += size


@functools.cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events (group_id, stream_id, ts, ingest, message) VALUES {values}"


def _recount(conn: sqlite3.Connection, group_id: int) -> None:
    conn.execute(
        "UPDATE groups SET stored_bytes = (SELECT coalesce(sum(length(CAST(message AS BLOB))), 0)"
        " FROM events WHERE group_id = ?) WHERE id = ?",
        (group_id, group_id),
    )
    conn.execute(
        "UPDATE streams SET first_ts = (SELECT min(ts) FROM events WHERE stream_id = streams.id)"
        " WHERE group_id = ?",
        (group_id,),
    )


def _check_batch(batch: Sequence[tuple[int, str]]) -> None:
    if any(b[0] < a[0] for a, b in zip(batch, batch[1:], strict=False)):
        raise InvalidParameterException(
            "Log events in a single PutLogEvents request must be in chronological order."
        )
    if batch and batch[-1][0] - batch[0][0] > DAY_MS:
        raise InvalidParameterException(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
        )
    size = sum(_size(message) + EVENT_OVERHEAD for _, message in batch)
    if size > PAGE_BYTES:
        raise InvalidParameterException(f"Upload too large: {size} bytes exceeds limit of {PAGE_BYTES}")


def _split_rejected(
    batch: Sequence[tuple[int, str]], now: int, retention: int | None
) -> tuple[Sequence[tuple[int, str]], Json]:
    """Keep the events AWS accepts; say which it rejects (the batch is in timestamp order)."""
    rejected: Json = {}
    too_old = [i for i, (ts, _) in enumerate(batch) if ts < now - TOO_OLD_MS]
    expired = [i for i, (ts, _) in enumerate(batch) if retention and ts < now - retention * DAY_MS]
    too_new = [i for i, (ts, _) in enumerate(batch) if ts > now + TOO_NEW_MS]
    if too_new:
        rejected["tooNewLogEventStartIndex"] = too_new[0]
    if too_old:
        rejected["tooOldLogEventEndIndex"] = too_old[-1]
    if expired:
        rejected["expiredLogEventEndIndex"] = expired[-1]
    first = max(too_old + expired, default=-1) + 1
    last = too_new[0] if too_new else len(batch)
    return batch[first:last], rejected


def _streams_query(
    group_id: int, prefix: str | None, by_time: bool, descending: bool, after: Any, limit: int
) -> tuple[str, list[Any]]:
    sql = "SELECT name, created, first_ts, last_ts, last_ingest, seq FROM streams WHERE group_id = ?"
    args: list[Any] = [group_id]
    order = "DESC" if descending else "ASC"
    compare = "<" if descending else ">"
    if prefix:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(prefix), prefix]
    if by_time:
        if after is not None:
            sql += f" AND (coalesce(last_ts, 0), name) {compare} (?, ?)"
            args += list(after)
        sql += f" ORDER BY coalesce(last_ts, 0) {order}, name {order}"
    else:
        if after is not None:
            sql += f" AND name {compare} ?"
            args.append(after[0])
        sql += f" ORDER BY name {order}"
    sql += " LIMIT ?"
    args.append(limit)
    return sql, args


def _stream_events(
    conn: sqlite3.Connection,
    stream_id: int,
    start: int | None,
    end: int | None,
    direction: str,
    cursor: Key | None,
    limit: int,
) -> list[tuple[int, int, int, str]]:
    """Rows (id, ts, ingest, message): after the cursor ascending, or before it descending."""
    sql = "SELECT id, ts, ingest, message FROM events WHERE stream_id = ?"
    args: list[Any] = [stream_id]
    if start is not None:
        sql += " AND ts >= ?"
        args.append(start)
    if end is not None:
        sql += " AND ts < ?"
        args.append(end)
    if cursor is not None:
        sql += " AND (ts, id) >= (?, ?)" if direction == "f" else " AND (ts, id) < (?, ?)"
        args += list(cursor)
    order = "ASC" if direction == "f" else "DESC"
    sql += f" ORDER BY ts {order}, id {order} LIMIT ?"
    args.append(limit)
    return conn.execute(sql, args).fetchall()


def _within_bytes(rows: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """The rows nearest the cursor (the order they were read in) that fit AWS's 1 MB response."""
    total = 0
    for count, row in enumerate(rows):
        total += _size(row[3]) + EVENT_OVERHEAD
        if total > PAGE_BYTES and count > 0:
            return rows[:count]
    return rows


def _filter_cursor(token: str | None, start: int | None) -> Key:
    if not token:
        return (start or 0, 0)
    value = decode_token(token)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise InvalidParameterException(_BAD_TOKEN)
    return value[0], value[1]


def _matching_streams(
    conn: sqlite3.Connection, group_id: int, names: Sequence[str] | None, prefix: str | None
) -> dict[int, str] | None:
    """Stream ids to search (None: all of the group's)."""
    if names:
        marks = ",".join("?" * len(names))
        sql = f"SELECT id, name FROM streams WHERE group_id = ? AND name IN ({marks})"
        rows = conn.execute(sql, [group_id, *names]).fetchall()
    elif prefix:
        sql = "SELECT id, name FROM streams WHERE group_id = ? AND substr(name, 1, ?) = ?"
        rows = conn.execute(sql, (group_id, len(prefix), prefix)).fetchall()
    else:
        return None
    return dict(rows)


class _FilterScan:
    """One FilterLogEvents page: scan events in (ts, id) order from a cursor, keep the matches."""

    def __init__(self, matcher: Matcher, start: int | None, end: int | None, limit: int) -> None:
        self.matcher = matcher
        self.start = start
        self.end = end
        self.limit = limit

    def run(
        self, conn: sqlite3.Connection, group_id: int, streams: dict[int, str] | None, cursor: Key
    ) -> Json:
        events: list[Json] = []
        if streams is not None and not streams:
            return {"events": events, "searchedLogStreams": []}
        names = (
            streams
            if streams is not None
            else dict(conn.execute("SELECT id, name FROM streams WHERE group_id = ?", (group_id,)).fetchall())
        )
        size = scanned = 0
        while True:
            rows = self._chunk(conn, group_id, streams, cursor)
            for event_id, stream_id, ts, ingest, message in rows:
                scanned += 1
                cursor = _key_after(ts, event_id)
                if not self.matcher(message):
                    continue
                size += _size(message) + EVENT_OVERHEAD
                events.append(_filtered_event(names.get(stream_id, ""), event_id, ts, ingest, message))
                if len(events) >= self.limit or size >= PAGE_BYTES:
                    return self._page(conn, group_id, streams, events, cursor)
            if len(rows) < SCAN_CHUNK:
                return {"events": events, "searchedLogStreams": []}
            if scanned >= SCAN_BUDGET:
                return {"events": events, "searchedLogStreams": [], "nextToken": encode_token(list(cursor))}

    def _page(
        self,
        conn: sqlite3.Connection,
        group_id: int,
        streams: dict[int, str] | None,
        events: list[Json],
        cursor: Key,
    ) -> Json:
        out: Json = {"events": events, "searchedLogStreams": []}
        if self._chunk(conn, group_id, streams, cursor, 1):
            out["nextToken"] = encode_token(list(cursor))
        return out

    def _chunk(
        self,
        conn: sqlite3.Connection,
        group_id: int,
        streams: dict[int, str] | None,
        cursor: Key,
        size: int = SCAN_CHUNK,
    ) -> list[tuple[int, int, int, int, str]]:
        sql = (
            "SELECT id, stream_id, ts, ingest, message FROM events WHERE group_id = ? AND (ts, id) >= (?, ?)"
        )
        args: list[Any] = [group_id, *cursor]
        if self.start is not None:
            sql += " AND ts >= ?"
            args.append(self.start)
        if self.end is not None:
            sql += " AND ts <= ?"
            args.append(self.end)
        if streams is not None:
            sql += f" AND stream_id IN ({','.join('?' * len(streams))})"
            args += list(streams)
        sql += " ORDER BY ts, id LIMIT ?"
        args.append(size)
        return conn.execute(sql, args).fetchall()


def _filtered_event(stream: str, event_id: int, ts: int, ingest: int, message: str) -> Json:
    return {
        "logStreamName": stream,
        "timestamp": ts,
        "message": message,
        "ingestionTime": ingest,
        "eventId": f"{ts:020d}{event_id:036d}",
    }
