"""Log groups, streams and events in SQLite, with CloudWatch Logs' semantics.

Functions' output reaches the store through ``append``, which only buffers in memory: the invoke
path never waits on a disk write. A background task writes the buffer in one transaction every
~100 ms (sooner when 1000 events are pending), creating groups and streams on first write, as
Lambda does with ``/aws/lambda/<name>``. All writes run in the writer process (``logwriter``),
handed to it in order by one thread (SQLite has one writer anyway); reads run on a second thread
with its own connection, which WAL lets read while a batch is being written.

Events are ordered by (timestamp, rowid). GetLogEvents' tokens are cursors between two events,
spelled like AWS's (``f/<56 digits>/s``): the event key just after the cursor, so a forward token
read again when nothing is new comes back unchanged, as AWS documents.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lambdad import tasks
from lambdad.http.errors import InvalidParameterException
from lambdad.invoke.loglines import Invocation
from lambdad.observe.filter_pattern import Matcher, compile_pattern
from lambdad.observe.logwriter import (
    DAY_MS,
    Batch,
    WriterProcess,
    connect,
    group_id_of,
    size_of,
    stream_id_of,
)
from lambdad.randomness import random_hex

log = logging.getLogger("lambdad.logs")
T = TypeVar("T")
Json = dict[str, Any]
Key = tuple[int, int]

FLUSH_INTERVAL_S = 0.1
FLUSH_THRESHOLD = 1000
#: Past this many buffered events (a disk far slower than the functions) new ones are dropped, counted.
MAX_BUFFERED = 500_000
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD = 26
#: Rows one FilterLogEvents call examines before answering with what it has and a nextToken, as AWS does.
SCAN_BUDGET = 200_000
SCAN_CHUNK = 2_000
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip

_BAD_TOKEN = "The specified nextToken is invalid."
_EVENT_TOKEN = re.compile(r"^([fb])/(\d{20})(\d{36})/s$")


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
        connect(path, False).close()  # the schema, before the reader opens the file
        self.writer = WriterProcess(path)
        #: Batches are numbered per store, so one sent again after its writer died is stored once.
        self._sender = random_hex(8)
        self._batches = 0
        self.writer.start()
        #: Hands operations to the writer process one at a time, in the order they were asked for.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logs-reader")
        self._rconn: sqlite3.Connection = self._reader.submit(connect, path, True).result()
        #: (group, stream, ts, a line or an invocation whose lines the writer makes)
        self._pending: Batch = []
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
        await asyncio.get_running_loop().run_in_executor(self._writer, self.writer.close)
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

    async def _write(self, op: str, *args: Any) -> Any:
        """Run the writer process's ``op`` (a ``logwriter.Writer`` method) after every earlier one."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self.writer.call, op, *args)

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
        self._appended()

    def append_invocation(self, group: str, stream: str, ts: int, invocation: Invocation) -> None:
        """Buffer an invocation's START, output, END and REPORT lines, all at ``ts``; the writer
        process makes the lines (``loglines.invocation_lines``). Call on the loop's thread."""
        if len(self._pending) >= MAX_BUFFERED:
            self._dropped += 3
            return
        self._pending.append((group, stream, ts, invocation))
        self._appended()

    def _appended(self) -> None:
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
            self._batches += 1
            await self._write("write_batch", batch, self.now_ms(), self._sender, self._batches)

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
        await self._write("create_group", name, log_group_class, self.now_ms())

    async def delete_log_group(self, name: str) -> None:
        await self._write("delete_group", name)

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
        await self._write("set_retention", name, days)

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
        await self._write("create_stream", group, stream, self.now_ms())

    async def delete_log_stream(self, group: str, stream: str) -> None:
        await self._write("delete_stream", group, stream)

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
            sql, args = _streams_query(
                group_id_of(conn, group), prefix, by_time, descending, after, limit + 1
            )
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
        seq, rejected = await self._write("put_events", group, stream, batch, self.now_ms())
        out: Json = {"nextSequenceToken": _sequence_token(seq)}
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

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
            _, stream_id = stream_id_of(conn, group, stream)
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
            group_id = group_id_of(conn, group)
            stream_ids = _matching_streams(conn, group_id, stream_names, stream_prefix)
            return scan.run(conn, group_id, stream_ids, cursor)

        return await self._read(run)

    # --- retention --------------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete events older than their group's retention; returns how many were deleted."""
        return int(await self._write("purge", self.now_ms()))


# --- helpers run on the store's threads -----------------------------------------------------------


def _check_batch(batch: Sequence[tuple[int, str]]) -> None:
    if any(b[0] < a[0] for a, b in zip(batch, batch[1:], strict=False)):
        raise InvalidParameterException(
            "Log events in a single PutLogEvents request must be in chronological order."
        )
    if batch and batch[-1][0] - batch[0][0] > DAY_MS:
        raise InvalidParameterException(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
        )
    size = sum(size_of(message) + EVENT_OVERHEAD for _, message in batch)
    if size > PAGE_BYTES:
        raise InvalidParameterException(f"Upload too large: {size} bytes exceeds limit of {PAGE_BYTES}")


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
        total += size_of(row[3]) + EVENT_OVERHEAD
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
                size += size_of(message) + EVENT_OVERHEAD
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
