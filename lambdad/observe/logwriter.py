"""Every write to the log store's SQLite file, run in a process of its own.

Storing log lines is the server's largest piece of background work: three or more rows per invoke.
On a thread of the server it shares the server's GIL. sqlite3 lets go of the GIL around every
statement step and takes it back after, so under load the event loop's thread kept handing the GIL
over and waiting for it again: with the writer on a thread the loop's thread needed about 40 us
more per invoke than with no log storage at all (A/B under wrk, docs/performance.md). A process has
its own GIL.

The server side (``WriterProcess``) sends ``(operation, arguments)`` frames over the child's stdin
and reads one reply per frame from its stdout, on one thread, so writes keep their order. The child
ends when its stdin closes: when the server closes the store, exits, or is killed. It runs in its
own session, so a Ctrl-C at the server's terminal does not stop it half-way through a batch.

The SQL helpers both sides use (schema, ids, row inserts) live here; reads stay in ``logstore``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import resource
import sqlite3
import struct
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from lambdad.http import errors
from lambdad.http.errors import ResourceAlreadyExistsException, ResourceNotFoundException
from lambdad.invoke.loglines import Invocation, invocation_lines
from lambdad.store import sqlite_files

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TOO_OLD_MS = 14 * DAY_MS
TOO_NEW_MS = 2 * HOUR_MS
#: The writer's nice value while it keeps up. Storing log lines is background work: on a 2-CPU
#: machine under 32-connection load, the writer at nice 0 took 4-11% of the invoke throughput from
#: the event loop's thread (A/B in alternating rounds, docs/performance.md).
WRITER_NICE = 10
#: A batch this large (about 3 s of log lines at 2,000 invokes/s) means the writer has fallen
#: behind: it is written at normal priority, so a busy machine cannot starve log storage.
CATCH_UP_EVENTS = 20_000
#: Rows per INSERT statement: 128 rows of 5 values stay under SQLite's oldest parameter limit (999).
INSERT_CHUNK = 128

GROUP_MISSING = "The specified log group does not exist."
STREAM_MISSING = "The specified log stream does not exist."

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS batches (
    writer TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
"""

#: (group, stream, ts, a line or an invocation whose lines are made here)
Batch = list[tuple[str, str, int, str | Invocation]]
_LENGTH = struct.Struct("!I")
_transaction = sqlite_files.transaction


class WriterPriority:
    """The writer's scheduling priority: WRITER_NICE while batches are small, normal for a batch that
    shows a backlog. It stays at normal priority where it could not be raised back (neither root
    nor an RLIMIT_NICE that allows it), so that lowering it can never become permanent."""

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
                print(f"lambdad log writer: cannot change its priority to {wanted}: {exc}", file=sys.stderr)
                self.enabled = False
                return
            self.nice = wanted


def _may_raise_priority() -> bool:
    if os.geteuid() == 0:
        return True
    soft = resource.getrlimit(resource.RLIMIT_NICE)[0]
    return soft == resource.RLIM_INFINITY or soft >= 20  # the ceiling is 20 - soft


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    return sqlite_files.connect(path, SCHEMA, readonly=readonly, same_thread=True)


# --- the operations (run in the writer process) ---------------------------------------------------


class Writer:
    """The writer process's state: its connection, the ids of the streams it has written to."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path, False)
        self.priority = WriterPriority()
        #: (group, stream) -> (group id, stream id)
        self.ids: dict[tuple[str, str], tuple[int, int]] = {}

    def write_batch(self, batch: Batch, now: int, sender: str, number: int) -> None:
        """Events appended by invokes: groups and streams are made on first write, as Lambda does.

        Batch ``number`` of ``sender`` (one log store) is written once: its number is committed
        with it, so a batch sent again after a writer died is not stored twice."""
        by_stream: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for group, stream, ts, message in batch:
            if isinstance(message, str):
                by_stream[group, stream].append((ts, message))
            else:
                by_stream[group, stream].extend((ts, line) for line in invocation_lines(message))
        self.priority.before_batch(sum(len(events) for events in by_stream.values()))
        conn = self.conn
        with _transaction(conn):
            done = conn.execute("SELECT last FROM batches WHERE writer = ?", (sender,)).fetchone()
            if done is not None and done[0] >= number:
                return
            conn.execute("INSERT OR REPLACE INTO batches (writer, last) VALUES (?, ?)", (sender, number))
            for (group, stream), events in by_stream.items():
                group_id, stream_id = self._ensure_stream(group, stream, now)
                insert_events(conn, group_id, stream_id, events, now)

    def _ensure_stream(self, group: str, stream: str, now: int) -> tuple[int, int]:
        ids = self.ids.get((group, stream))
        if ids is None:
            conn = self.conn
            conn.execute("INSERT OR IGNORE INTO groups (name, created) VALUES (?, ?)", (group, now))
            group_id = conn.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()[0]
            conn.execute(
                "INSERT OR IGNORE INTO streams (group_id, name, created) VALUES (?, ?, ?)",
                (group_id, stream, now),
            )
            stream_id = conn.execute(
                "SELECT id FROM streams WHERE group_id = ? AND name = ?", (group_id, stream)
            ).fetchone()[0]
            ids = self.ids[group, stream] = (group_id, stream_id)
        return ids

    def _forget(self, group: str, stream: str | None = None) -> None:
        for key in [k for k in self.ids if k[0] == group and (stream is None or k[1] == stream)]:
            del self.ids[key]

    def create_group(self, name: str, log_group_class: str | None, now: int) -> None:
        try:
            self.conn.execute(
                "INSERT INTO groups (name, created, class) VALUES (?, ?, ?)",
                (name, now, log_group_class or "STANDARD"),
            )
        except sqlite3.IntegrityError as exc:
            raise ResourceAlreadyExistsException("The specified log group already exists") from exc

    def delete_group(self, name: str) -> None:
        conn = self.conn
        with _transaction(conn):
            group_id = group_id_of(conn, name)
            conn.execute("DELETE FROM events WHERE group_id = ?", (group_id,))
            conn.execute("DELETE FROM streams WHERE group_id = ?", (group_id,))
            conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))
        self._forget(name)

    def set_retention(self, name: str, days: int | None) -> None:
        if self.conn.execute("UPDATE groups SET retention = ? WHERE name = ?", (days, name)).rowcount == 0:
            raise ResourceNotFoundException(GROUP_MISSING)

    def create_stream(self, group: str, stream: str, now: int) -> None:
        group_id = group_id_of(self.conn, group)
        try:
            self.conn.execute(
                "INSERT INTO streams (group_id, name, created) VALUES (?, ?, ?)", (group_id, stream, now)
            )
        except sqlite3.IntegrityError as exc:
            raise ResourceAlreadyExistsException("The specified log stream already exists") from exc

    def delete_stream(self, group: str, stream: str) -> None:
        conn = self.conn
        with _transaction(conn):
            _, stream_id = stream_id_of(conn, group, stream)
            conn.execute("DELETE FROM events WHERE stream_id = ?", (stream_id,))
            conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
        self._forget(group, stream)

    def put_events(
        self, group: str, stream: str, batch: Sequence[tuple[int, str]], now: int
    ) -> tuple[int, dict[str, int]]:
        """PutLogEvents: the stream's new sequence number and which events AWS would reject."""
        conn = self.conn
        with _transaction(conn):
            group_id, stream_id = stream_id_of(conn, group, stream)
            retention = conn.execute("SELECT retention FROM groups WHERE id = ?", (group_id,)).fetchone()[0]
            accepted, rejected = split_rejected(batch, now, retention)
            insert_events(conn, group_id, stream_id, accepted, now)
            conn.execute("UPDATE streams SET seq = seq + 1 WHERE id = ?", (stream_id,))
            seq = conn.execute("SELECT seq FROM streams WHERE id = ?", (stream_id,)).fetchone()[0]
        return int(seq), rejected

    def purge(self, now: int) -> int:
        """Delete events older than their group's retention; returns how many."""
        conn = self.conn
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


OPERATIONS: dict[str, Callable[..., Any]] = {
    name: getattr(Writer, name)
    for name in ("write_batch", "create_group", "delete_group", "set_retention", "create_stream",
                 "delete_stream", "put_events", "purge")
}  # fmt: skip


def serve(path: Path, requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answer frames until the server closes ``requests``: ("ok", result) or ("aws", code, message)."""
    writer = Writer(path)
    try:
        while (frame := _read_frame(requests)) is not None:
            op, args = pickle.loads(frame)
            try:
                reply: tuple[Any, ...] = ("ok", OPERATIONS[op](writer, *args))
            except errors.AwsError as exc:
                reply = ("aws", type(exc).__name__, exc.message)
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
            replies.write(_LENGTH.pack(len(data)) + data)
            replies.flush()
    finally:
        writer.conn.close()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    return body if len(body) == length else None


# --- the server's side ----------------------------------------------------------------------------


#: Operations that give the same result when carried out twice.
_SAFE_TO_REPEAT = frozenset({"write_batch", "set_retention", "purge"})


class WriterError(RuntimeError):
    """The writer process failed an operation for a reason that is not the caller's."""


class WriterProcess:
    """The server's handle on the writer process. ``call`` and ``close`` block and are not
    thread-safe: the log store makes them on its one writer thread, which keeps them in order."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lambdad.observe.logwriter", str(self._path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )

    def call(self, op: str, *args: Any) -> Any:
        """Run ``op`` in the writer, started again if it died. An operation the dead writer may
        have carried out is asked again only when that is harmless (a numbered batch); any other
        fails with WriterError (the API answers 500 and the client may retry)."""
        data = pickle.dumps((op, args), pickle.HIGHEST_PROTOCOL)
        if self._proc is None or self._proc.poll() is not None:
            self._reap()
            self.start()
        sent, frame = self._exchange(data)
        if frame is None and (not sent or op in _SAFE_TO_REPEAT):
            self._reap()
            self.start()
            sent, frame = self._exchange(data)
        if frame is None:
            self._reap()
            raise WriterError(f"the log writer process stopped during {op}")
        reply = pickle.loads(frame)
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "aws":
            raise getattr(errors, reply[1])(reply[2])
        raise WriterError(f"log writer {op}: {reply[1]}")

    def _exchange(self, data: bytes) -> tuple[bool, bytes | None]:
        """(sent, reply): not sent when the writer was gone before it could read the request
        (nothing was done); no reply when it stopped after (something may have been done)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(_LENGTH.pack(len(data)) + data)
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return False, None
        return True, _read_frame(proc.stdout)

    def close(self) -> None:
        """End the writer once it has answered everything sent; waits for it."""
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a writer that died leaves a broken stdin
                    pipe.close()


# --- SQL both sides use -----------------------------------------------------------------------------


def size_of(message: str) -> int:
    """The message's size in UTF-8, as CloudWatch counts it (ASCII, the usual case, needs no encoding)."""
    return len(message) if message.isascii() else len(message.encode("utf-8", "surrogatepass"))


def group_id_of(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM groups WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ResourceNotFoundException(GROUP_MISSING)
    return int(row[0])


def stream_id_of(conn: sqlite3.Connection, group: str, stream: str) -> tuple[int, int]:
    group_id = group_id_of(conn, group)
    row = conn.execute(
        "SELECT id FROM streams WHERE group_id = ? AND name = ?", (group_id, stream)
    ).fetchone()
    if row is None:
        raise ResourceNotFoundException(STREAM_MISSING)
    return group_id, int(row[0])


def insert_events(
    conn: sqlite3.Connection, group_id: int, stream_id: int, events: Sequence[tuple[int, str]], now: int
) -> None:
    if not events:
        return
    _insert_rows(conn, group_id, stream_id, events, now)
    first = last = events[0][0]
    size = 0
    for ts, message in events:  # one pass: this runs for every batch of log lines
        if ts < first:
            first = ts
        elif ts > last:
            last = ts
        size += size_of(message)
    conn.execute(
        "UPDATE streams SET first_ts = min(coalesce(first_ts, ?), ?), last_ts = max(coalesce(last_ts, ?), ?),"
        " last_ingest = ? WHERE id = ?",
        (first, first, last, last, now, stream_id),
    )
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


def split_rejected(
    batch: Sequence[tuple[int, str]], now: int, retention: int | None
) -> tuple[Sequence[tuple[int, str]], dict[str, int]]:
    """Keep the events AWS accepts; say which it rejects (the batch is in timestamp order)."""
    rejected: dict[str, int] = {}
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


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)
