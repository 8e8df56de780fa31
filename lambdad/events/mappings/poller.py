"""One poller per enabled SQS mapping: long-poll the queue, filter, invoke, delete what succeeded.

A poller is one asyncio task that receives (never busy-polling: it waits in the queue's long poll)
only while one of its ``MaximumConcurrency`` slots is free; each batch then runs in its own task and
gives its slot back when done. Failed messages are left alone: they return after the visibility
timeout, and the queue store moves them to the dead-letter queue after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lambdad.environments.environment import InvokeOutcome
from lambdad.events.mappings.filters import Pattern, matches_any
from lambdad.events.queues.store import Message, QueueStore
from lambdad.http.errors import AwsError
from lambdad.invoke.concurrency import Throttled
from lambdad.store.base import FunctionRecord

log = logging.getLogger("lambdad.mappings")

LONG_POLL_S = 20
SQS_RECEIVE_MAX = 10
#: How long a poller waits before trying again when its function or queue is missing.
MISSING_BACKOFF_S = 5.0
THROTTLE_BACKOFF_S = (0.05, 1.0)

Resolve = Callable[[str, str | None], Awaitable[FunctionRecord]]
Run = Callable[[FunctionRecord, bytes, str, str | None], Awaitable[tuple[InvokeOutcome, list[str]]]]


@dataclass(frozen=True)
class PollSpec:
    """What a poller needs to know of its mapping (a snapshot; an update restarts the poller)."""

    uuid: str
    queue_arn: str
    function_name: str
    qualifier: str | None
    region: str
    batch_size: int
    window_s: float
    concurrency: int
    report_failures: bool
    filters: Sequence[Pattern]


def sqs_record(message: Message, queue_arn: str, region: str) -> dict[str, Any]:
    """A message as Lambda delivers it in an SQS event's ``Records``."""
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": message.attributes["ApproximateReceiveCount"],
            "SentTimestamp": message.attributes["SentTimestamp"],
            "SenderId": message.attributes["SenderId"],
            "ApproximateFirstReceiveTimestamp": message.attributes["ApproximateFirstReceiveTimestamp"],
        },
        "messageAttributes": {k: _attribute(v) for k, v in message.message_attributes.items()},
        "md5OfMessageAttributes": message.md5_of_message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
    out.update(stringListValues=[], binaryListValues=[], dataType=value.get("DataType", "String"))
    return out


def failed_items(outcome: InvokeOutcome, message_ids: Sequence[str], report_failures: bool) -> set[str]:
    """The message ids to leave on the queue after an invocation: all of them on any failure."""
    everything = set(message_ids)
    if outcome.kind != "ok":
        return everything
    if not report_failures:
        return set()
    try:
        response = json.loads(outcome.payload or b"null")
    except (ValueError, UnicodeDecodeError):
        return everything
    if response is None or (isinstance(response, dict) and not response.get("batchItemFailures")):
        return set() if isinstance(response, dict | None) else everything
    if not isinstance(response, dict) or not isinstance(response["batchItemFailures"], list):
        return everything
    failed = set()
    for item in response["batchItemFailures"]:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in everything:
            return everything  # an invalid report fails the whole batch, as AWS documents
        failed.add(ident)
    return failed


class Poller:
    """Polls one queue for one mapping until stopped."""

    def __init__(self, spec: PollSpec, queues: QueueStore, resolve: Resolve, run: Run) -> None:
        self.spec = spec
        self._queues = queues
        self._resolve = resolve
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"poller-{self.spec.uuid}")

    async def stop(self, cancel_batches: bool) -> None:
        """Stop receiving; in-flight batches finish (disable, update) or are cancelled (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if cancel_batches:
            for task in list(self._batches):
                task.cancel()
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.spec.concurrency)
        while True:
            await slots.acquire()
            try:
                batch = await self._next_batch()
            except asyncio.CancelledError:
                raise
            except AwsError as error:
                log.warning("mapping %s cannot poll: %s", self.spec.uuid, error.message)
                batch = None
                await asyncio.sleep(MISSING_BACKOFF_S)
            except Exception:
                log.exception("mapping %s: polling failed", self.spec.uuid)
                batch = None
                await asyncio.sleep(1.0)
            if batch is None:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._process(*batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _next_batch(self) -> tuple[FunctionRecord, list[Message], float] | None:
        record = await self._resolve(self.spec.function_name, self.spec.qualifier)
        queue = await self._queues.queue(self.spec.queue_arn)
        messages = await self._collect()
        if not messages:
            return None
        return record, messages, float(queue.setting("VisibilityTimeout"))

    async def _collect(self) -> list[Message]:
        """One long poll; then, with a batching window, more receives until full or the window ends."""
        spec = self.spec
        first = min(spec.batch_size, SQS_RECEIVE_MAX)
        messages = await self._queues.receive(spec.queue_arn, max_messages=first, wait_s=LONG_POLL_S)
        if not messages or spec.window_s <= 0:
            return messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.window_s
        while len(messages) < spec.batch_size and (remaining := deadline - loop.time()) > 0:
            wanted = min(spec.batch_size - len(messages), SQS_RECEIVE_MAX)
            messages += await self._queues.receive(spec.queue_arn, max_messages=wanted, wait_s=remaining)
        return messages

    async def _process(self, record: FunctionRecord, messages: list[Message], visibility_s: float) -> None:
        spec = self.spec
        records = [sqs_record(m, spec.queue_arn, spec.region) for m in messages]
        handles = {r["messageId"]: r["receiptHandle"] for r in records}
        selected = [r for r in records if matches_any(spec.filters, r)]
        dropped = [r["messageId"] for r in records if r not in selected]
        await self._delete(handles, dropped)  # AWS deletes what no filter matched
        if not selected:
            return
        payload = json.dumps({"Records": selected}).encode()
        outcome = await self._invoke(record, payload, visibility_s)
        if outcome is None:
            return
        ids = [r["messageId"] for r in selected]
        failed = failed_items(outcome, ids, spec.report_failures)
        await self._delete(handles, [i for i in ids if i not in failed])

    async def _invoke(
        self, record: FunctionRecord, payload: bytes, visibility_s: float
    ) -> InvokeOutcome | None:
        """Invoke, waiting out throttling for up to half the visibility timeout."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(1.0, visibility_s / 2)
        delay = THROTTLE_BACKOFF_S[0]
        while True:
            try:
                outcome, _ = await self._run(record, payload, str(uuid.uuid4()), None)
                return outcome
            except Throttled:
                if loop.time() + delay > give_up:
                    return None  # the messages return after their visibility timeout
                await asyncio.sleep(delay)
                delay = min(delay * 2, THROTTLE_BACKOFF_S[1])
            except Exception:
                log.exception("mapping %s: invoking %s failed", self.spec.uuid, record.name)
                return None

    async def _delete(self, handles: dict[str, str], message_ids: list[str]) -> None:
        for message_id in message_ids:
            try:
                await self._queues.delete(self.spec.queue_arn, handles[message_id])
            except AwsError as error:
                log.warning("mapping %s: delete failed: %s", self.spec.uuid, error.message)
