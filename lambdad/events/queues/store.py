"""Queues and their messages in SQLite, with SQS's semantics for a standard queue.

Every operation runs on one thread holding one connection (SQLite has one writer anyway), each in its
own transaction: a send answered to a client is committed (WAL), so it survives a crash of the
process. Time is stored, never scheduled: a message's ``visible_at`` (epoch ms) covers both its
delay and its visibility timeout, so a restart resumes exactly where the last commit left off and no
per-message timer exists. Long polls wait on a per-queue ``asyncio.Event`` that sends and visibility
changes set, bounded by the next time a hidden message becomes visible.

A receipt handle names the queue, the message's row and a nonce drawn at each receive; deleting
with an older handle of a message received again since succeeds and deletes nothing, as AWS
documents. Redrive happens on receive: a message due again after ``maxReceiveCount`` receives moves
to the dead-letter queue instead of being delivered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lambdad import tasks
from lambdad.events.queues import validation
from lambdad.events.queues.md5 import md5_of_attributes, md5_of_body
from lambdad.http.errors import (
    InvalidAttributeName,
    InvalidParameterValue,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
)
from lambdad.store import sqlite_files

log = logging.getLogger("lambdad.queues")
T = TypeVar("T")
Json = dict[str, Any]

PURGE_INTERVAL_S = 60.0
MAX_WAIT_S = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    md5_body TEXT NOT NULL,
    md5_attributes TEXT,
    sender TEXT NOT NULL,
    sent INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive INTEGER,
    nonce TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (queue, visible_at, id);
"""
_MESSAGE_COLUMNS = (
    "id, message_id, body, attributes, md5_body, md5_attributes, sender, sent, receive_count, first_receive"
)


@dataclass(frozen=True)
class Message:
    """A received message: what ReceiveMessage returns, and what event source mappings deliver."""

    message_id: str
    receipt_handle: str
    body: str
    md5_of_body: str
    #: System attributes: ApproximateReceiveCount, ApproximateFirstReceiveTimestamp, SentTimestamp, SenderId.
    attributes: dict[str, str]
    #: Message attributes as sent; a BinaryValue is bytes.
    message_attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    md5_of_message_attributes: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A validated message ready to be written."""

    body: str
    attributes: dict[str, dict[str, Any]]
    delay_s: int | None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def md5_of_body(self) -> str:
        return md5_of_body(self.body)

    @property
    def md5_of_attributes(self) -> str | None:
        return md5_of_attributes(self.attributes)


@dataclass(frozen=True)
class Queue:
    name: str
    created: int
    modified: int
    attributes: dict[str, str]
    tags: dict[str, str]

    def setting(self, name: str) -> int:
        return int(self.attributes.get(name, validation.DEFAULTS[name]))

    @property
    def redrive(self) -> tuple[str, int] | None:
        """(dead-letter queue name, maxReceiveCount), if the queue has a redrive policy."""
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        doc = json.loads(raw)
        return str(doc["deadLetterTargetArn"]).rsplit(":", 1)[-1], int(doc["maxReceiveCount"])


@dataclass(frozen=True)
class _Received:
    queue: Queue
    messages: list[Message]
    #: When the next hidden message becomes visible (epoch ms), if none was received.
    next_due: int | None
    #: The dead-letter queue messages were moved to, if any.
    moved_to: str | None


class QueueStore:
    """The queues of one node: ``<data_dir>/queues.db``. See the package docstring for the Python API."""

    def __init__(
        self,
        path: Path,
        region: str,
        account: str,
        clock: Callable[[], float] = time.time,
        purge_interval_s: float = PURGE_INTERVAL_S,
        endpoint: str = "http://localhost:9000",
    ) -> None:
        self.region = region
        self.account = account
        self.endpoint = endpoint.rstrip("/")
        self._clock = clock
        self._purge_interval_s = purge_interval_s
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queues-writer")
        self._conn: sqlite3.Connection = self._writer.submit(_connect, path).result()
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- life cycle -------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._purge_loop(), name="queues-retention")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await tasks.stop(self._task)
        for event in self._events.values():
            event.set()
        await self._run(lambda conn: conn.close())
        self._writer.shutdown(wait=True)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval_s)
            try:
                await self.purge_expired()
            except Exception:
                log.exception("purging expired messages failed")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, self._conn)

    def _notify(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    # --- names ------------------------------------------------------------------------------------

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def queue_url(self, name: str, host: str | None = None) -> str:
        base = f"http://{host}" if host else self.endpoint
        return f"{base}/{self.account}/{name}"

    def name_of(self, ref: str) -> str:
        """The queue named by an ARN, a queue URL (any host) or a bare name."""
        if ref.startswith("arn:"):
            parts = ref.split(":")
            if len(parts) != 6 or parts[2] != "sqs" or parts[4] != self.account:
                raise QueueDoesNotExist("The specified queue does not exist.")
            return parts[5]
        if "://" in ref:
            ref = ref.split("://", 1)[1].partition("/")[2]
        parts = [p for p in ref.split("/") if p]
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[0] != self.account):
            raise QueueDoesNotExist("The specified queue does not exist.")
        return parts[-1]

    # --- queues -----------------------------------------------------------------------------------

    async def create_queue(
        self, name: str, attributes: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        """Create a queue; the same name with the same attributes is not an error, as in AWS."""
        validation.check_queue_name(name)
        wanted = validation.check_queue_attributes(attributes or {})

        def create(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                existing = _find_queue(conn, name)
                if existing is not None:
                    _check_same(existing, wanted)
                    return
                self._check_dead_letter_target(conn, wanted)
                now = self.now_ms() // 1000
                conn.execute(
                    "INSERT INTO queues (name, created, modified, attributes, tags) VALUES (?, ?, ?, ?, ?)",
                    (name, now, now, json.dumps(_without_empty(wanted)), json.dumps(dict(tags or {}))),
                )

        await self._run(create)

    def _check_dead_letter_target(self, conn: sqlite3.Connection, attributes: Mapping[str, str]) -> None:
        policy = attributes.get("RedrivePolicy")
        if not policy:
            return
        arn = json.loads(policy)["deadLetterTargetArn"]
        try:
            target = self.name_of(arn)
        except QueueDoesNotExist:
            target = ""
        if not target or _find_queue(conn, target) is None:
            raise InvalidParameterValue(
                f"Value {policy} for parameter RedrivePolicy is invalid. Reason: Dead-letter target does not exist."
            )

    async def queue(self, ref: str) -> Queue:
        name = self.name_of(ref)
        return await self._run(lambda conn: _get_queue(conn, name))

    async def exists(self, ref: str) -> bool:
        try:
            await self.queue(ref)
        except QueueDoesNotExist:
            return False
        return True

    async def list_queues(self, prefix: str | None = None, after: str = "", limit: int = 1000) -> list[str]:
        sql = "SELECT name FROM queues WHERE name > ?"
        args: list[Any] = [after]
        if prefix:
            sql += " AND substr(name, 1, ?) = ?"
            args += [len(prefix), prefix]
        sql += " ORDER BY name LIMIT ?"
        args.append(limit)
        rows = await self._run(lambda conn: conn.execute(sql, args).fetchall())
        return [str(row[0]) for row in rows]

    async def delete_queue(self, ref: str) -> None:
        name = self.name_of(ref)

        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _get_queue(conn, name)
                conn.execute("DELETE FROM messages WHERE queue = ?", (name,))
                conn.execute("DELETE FROM queues WHERE name = ?", (name,))

        await self._run(delete)
        self._notify(name)

    async def purge_queue(self, ref: str) -> None:
        name = self.name_of(ref)

        def purge(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _get_queue(conn, name)
                conn.execute("DELETE FROM messages WHERE queue = ?", (name,))

        await self._run(purge)

    async def get_attributes(self, ref: str, names: Iterable[str]) -> dict[str, str]:
        """The named attributes ("All" for every one); unknown names are AWS's InvalidAttributeName."""
        wanted = set(names)
        known = set(validation.RANGES) | set(validation.COMPUTED) | validation.FIFO_ONLY | {"All"}
        for name in sorted(wanted - known):
            raise InvalidAttributeName(f"Unknown Attribute {name}.")
        queue_name = self.name_of(ref)

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            queue = _get_queue(conn, queue_name)
            return self._attributes(conn, queue)

        everything = await self._run(read)
        if "All" in wanted:
            return everything
        return {k: v for k, v in everything.items() if k in wanted}

    def _attributes(self, conn: sqlite3.Connection, queue: Queue) -> dict[str, str]:
        now = self.now_ms()
        visible, hidden, delayed = conn.execute(
            "SELECT coalesce(sum(visible_at <= ?), 0), coalesce(sum(visible_at > ? AND receive_count > 0), 0),"
            " coalesce(sum(visible_at > ? AND receive_count = 0), 0) FROM messages WHERE queue = ?",
            (now, now, now, queue.name),
        ).fetchone()
        out = {
            "QueueArn": self.queue_arn(queue.name),
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(hidden),
            "ApproximateNumberOfMessagesDelayed": str(delayed),
            "CreatedTimestamp": str(queue.created),
            "LastModifiedTimestamp": str(queue.modified),
        }
        out.update(validation.DEFAULTS)
        out.update(queue.attributes)
        return out

    async def set_attributes(self, ref: str, attributes: Mapping[str, str]) -> None:
        changes = validation.check_queue_attributes(attributes)
        name = self.name_of(ref)

        def update(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                queue = _get_queue(conn, name)
                self._check_dead_letter_target(conn, changes)
                merged = _without_empty({**queue.attributes, **changes})
                conn.execute(
                    "UPDATE queues SET attributes = ?, modified = ? WHERE name = ?",
                    (json.dumps(merged), self.now_ms() // 1000, name),
                )

        await self._run(update)

    async def tag_queue(self, ref: str, tags: Mapping[str, str]) -> None:
        await self._update_tags(ref, lambda current: {**current, **tags})

    async def untag_queue(self, ref: str, keys: Iterable[str]) -> None:
        drop = set(keys)
        await self._update_tags(ref, lambda current: {k: v for k, v in current.items() if k not in drop})

    async def _update_tags(self, ref: str, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        name = self.name_of(ref)

        def update(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                queue = _get_queue(conn, name)
                tags = json.dumps(change(queue.tags))
                conn.execute("UPDATE queues SET tags = ? WHERE name = ?", (tags, name))

        await self._run(update)

    # --- messages ---------------------------------------------------------------------------------

    async def send(
        self,
        queue_arn_or_url: str,
        body: str,
        attributes: Mapping[str, Any] | None = None,
        delay_seconds: int | None = None,
        sender: str | None = None,
    ) -> str:
        """Validate and durably enqueue one message; return its message id."""
        queue = await self.queue(queue_arn_or_url)
        outgoing = prepare(queue, body, attributes or {}, delay_seconds)
        await self.send_prepared(queue.name, [outgoing], sender)
        return outgoing.message_id

    async def send_prepared(self, name: str, messages: list[Outgoing], sender: str | None = None) -> None:
        """Write validated messages in one transaction (a batch is all or nothing on disk)."""
        who = sender or self.account

        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                queue = _get_queue(conn, name)
                now = self.now_ms()
                conn.executemany(
                    "INSERT INTO messages (queue, message_id, body, attributes, md5_body, md5_attributes,"
                    " sender, sent, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_row(queue, m, who, now) for m in messages],
                )

        await self._run(insert)
        self._notify(name)

    async def receive(
        self,
        queue_arn: str,
        max_messages: int = 1,
        visibility_timeout: int | None = None,
        wait_s: float | None = None,
    ) -> list[Message]:
        """Up to ``max_messages`` messages, hidden for the visibility timeout; waits up to ``wait_s``."""
        name = self.name_of(queue_arn)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            event = self._events.setdefault(name, asyncio.Event())
            got = await self._run(
                lambda conn: self._receive_once(conn, name, max_messages, visibility_timeout)
            )
            if got.moved_to is not None:
                self._notify(got.moved_to)
            if deadline is None:
                wait = got.queue.setting("ReceiveMessageWaitTimeSeconds") if wait_s is None else wait_s
                deadline = loop.time() + min(wait, MAX_WAIT_S)
            remaining = deadline - loop.time()
            if got.messages or remaining <= 0 or self._closed:
                return got.messages
            if got.next_due is not None:
                remaining = min(remaining, max(0.005, (got.next_due - self.now_ms()) / 1000))
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def _receive_once(
        self, conn: sqlite3.Connection, name: str, limit: int, visibility_timeout: int | None
    ) -> _Received:
        with _transaction(conn):
            queue = _get_queue(conn, name)
            now = self.now_ms()
            hide_s = queue.setting("VisibilityTimeout") if visibility_timeout is None else visibility_timeout
            oldest = now - queue.setting("MessageRetentionPeriod") * 1000
            redrive = queue.redrive
            dead_letter = redrive if redrive and _find_queue(conn, redrive[0]) is not None else None
            out: list[Message] = []
            moved = False
            while len(out) < limit:
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE queue = ? AND visible_at <= ? AND sent >= ?"
                    " ORDER BY visible_at, id LIMIT ?",
                    (name, now, oldest, limit - len(out)),
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    if dead_letter is not None and row[8] >= dead_letter[1]:
                        _move(conn, row[0], dead_letter[0], now)
                        moved = True
                    else:
                        out.append(self._deliver(conn, name, row, now, hide_s))
            next_due = None
            if not out:
                next_due = conn.execute(
                    "SELECT min(visible_at) FROM messages WHERE queue = ? AND visible_at > ?", (name, now)
                ).fetchone()[0]
        return _Received(queue, out, next_due, dead_letter[0] if moved and dead_letter else None)

    def _deliver(
        self, conn: sqlite3.Connection, queue: str, row: tuple[Any, ...], now: int, hide_s: int
    ) -> Message:
        row_id, message_id, body, attributes, md5_body, md5_attributes, sender, sent, count, first = row
        nonce = uuid.uuid4().hex
        conn.execute(
            "UPDATE messages SET visible_at = ?, receive_count = receive_count + 1,"
            " first_receive = coalesce(first_receive, ?), nonce = ? WHERE id = ?",
            (now + hide_s * 1000, now, nonce, row_id),
        )
        return Message(
            message_id=message_id,
            receipt_handle=encode_receipt(queue, row_id, nonce),
            body=body,
            md5_of_body=md5_body,
            attributes={
                "SenderId": sender,
                "ApproximateFirstReceiveTimestamp": str(first if first is not None else now),
                "ApproximateReceiveCount": str(count + 1),
                "SentTimestamp": str(sent),
            },
            message_attributes=_load_attributes(attributes),
            md5_of_message_attributes=md5_attributes,
        )

    async def delete(self, queue_arn: str, receipt_handle: str) -> None:
        """Delete a received message. A handle superseded by a later receive deletes nothing, as in AWS."""
        name = self.name_of(queue_arn)
        row_id, nonce = decode_receipt(name, receipt_handle)

        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _get_queue(conn, name)
                conn.execute(
                    "DELETE FROM messages WHERE id = ? AND queue = ? AND nonce = ?", (row_id, name, nonce)
                )

        await self._run(delete)

    async def change_visibility(self, queue_arn: str, receipt_handle: str, timeout_s: int) -> None:
        """Hide an in-flight message for ``timeout_s`` seconds from now (0 makes it visible at once)."""
        if not 0 <= timeout_s <= 43_200:
            raise InvalidParameterValue(
                f"Value {timeout_s} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200."
            )
        name = self.name_of(queue_arn)
        row_id, nonce = decode_receipt(name, receipt_handle)

        def change(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _get_queue(conn, name)
                now = self.now_ms()
                row = conn.execute(
                    "SELECT visible_at, nonce FROM messages WHERE id = ? AND queue = ?", (row_id, name)
                ).fetchone()
                if row is None or row[1] != nonce or row[0] <= now:
                    raise MessageNotInflight(
                        "Message does not exist or is not available for visibility timeout change."
                    )
                conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE id = ?", (now + timeout_s * 1000, row_id)
                )

        await self._run(change)
        self._notify(name)

    async def purge_expired(self) -> int:
        """Delete messages older than their queue's MessageRetentionPeriod; return how many."""

        def purge(conn: sqlite3.Connection) -> int:
            now = self.now_ms()
            removed = 0
            with _transaction(conn):
                for (name,) in conn.execute("SELECT name FROM queues").fetchall():
                    queue = _get_queue(conn, name)
                    oldest = now - queue.setting("MessageRetentionPeriod") * 1000
                    cursor = conn.execute("DELETE FROM messages WHERE queue = ? AND sent < ?", (name, oldest))
                    removed += cursor.rowcount
            return removed

        return await self._run(purge)


def prepare(queue: Queue, body: str, attributes: Mapping[str, Any], delay_s: int | None) -> Outgoing:
    """Validate one message for ``queue`` (size, characters, attributes, delay)."""
    validation.check_delay(delay_s)
    stored = validation.check_message(body, attributes, queue.setting("MaximumMessageSize"))
    return Outgoing(body, stored, delay_s)


# --- receipt handles ----------------------------------------------------------------------------


def encode_receipt(queue: str, row_id: int, nonce: str) -> str:
    return base64.urlsafe_b64encode(f"{queue}\n{row_id}\n{nonce}".encode()).decode()


def decode_receipt(queue: str, handle: str) -> tuple[int, str]:
    try:
        name, row_id, nonce = base64.urlsafe_b64decode(handle.encode()).decode().split("\n")
        if name == queue:
            return int(row_id), nonce
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise ReceiptHandleIsInvalid(f'The input receipt handle "{handle}" is not a valid receipt handle.')


# --- helpers run on the store's thread ----------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite_files.connect(path, _SCHEMA, same_thread=True)


_transaction = sqlite_files.transaction


def _find_queue(conn: sqlite3.Connection, name: str) -> Queue | None:
    row = conn.execute(
        "SELECT name, created, modified, attributes, tags FROM queues WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    return Queue(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]))


def _get_queue(conn: sqlite3.Connection, name: str) -> Queue:
    queue = _find_queue(conn, name)
    if queue is None:
        raise QueueDoesNotExist("The specified queue does not exist.")
    return queue


def _check_same(existing: Queue, wanted: Mapping[str, str]) -> None:
    for name, value in wanted.items():
        current = existing.attributes.get(name, validation.DEFAULTS.get(name, ""))
        if current != value:
            raise QueueNameExists(
                f"A queue already exists with the same name and a different value for attribute {name}"
            )


def _without_empty(attributes: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in attributes.items() if not (k == "RedrivePolicy" and v == "")}


def _row(queue: Queue, message: Outgoing, sender: str, now: int) -> tuple[Any, ...]:
    delay = queue.setting("DelaySeconds") if message.delay_s is None else message.delay_s
    return (
        queue.name,
        message.message_id,
        message.body,
        _dump_attributes(message.attributes),
        message.md5_of_body,
        message.md5_of_attributes,
        sender,
        now,
        now + delay * 1000,
    )


def _move(conn: sqlite3.Connection, row_id: int, target: str, now: int) -> None:
    """Move a message to the dead-letter queue: same id, body and sent time; received afresh there."""
    conn.execute(
        "INSERT INTO messages (queue, message_id, body, attributes, md5_body, md5_attributes, sender, sent,"
        " visible_at) SELECT ?, message_id, body, attributes, md5_body, md5_attributes, sender, sent, ?"
        " FROM messages WHERE id = ?",
        (target, now, row_id),
    )
    conn.execute("DELETE FROM messages WHERE id = ?", (row_id,))


def _dump_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    if not attributes:
        return None
    out = {}
    for name, value in attributes.items():
        item = dict(value)
        if isinstance(item.get("BinaryValue"), bytes):
            item["BinaryValue"] = base64.b64encode(item["BinaryValue"]).decode()
        out[name] = item
    return json.dumps(out)


def _load_attributes(raw: str | None) -> dict[str, dict[str, Any]]:
    if not raw:
        return {}
    out: dict[str, dict[str, Any]] = json.loads(raw)
    for value in out.values():
        if "BinaryValue" in value:
            value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
    return out
