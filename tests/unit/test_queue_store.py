"""The queue store's timing logic with a fake clock: delays, visibility, redrive, retention, handles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from lambdad.events.queues.store import QueueStore
from lambdad.http.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidParameterValue,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
)

T = TypeVar("T")
ARN = "arn:aws:sqs:us-east-1:000000000000:"


class Clock:
    def __init__(self) -> None:
        self.s = 1_700_000_000.0

    def __call__(self) -> float:
        return self.s


def run(tmp_path: Path, body: Callable[[QueueStore, Clock], Awaitable[T]]) -> T:
    async def main() -> T:
        clock = Clock()
        store = QueueStore(tmp_path / "queues.db", "us-east-1", "000000000000", clock=clock)
        await store.start()
        try:
            return await body(store, clock)
        finally:
            await store.close()

    return asyncio.run(main())


def test_visibility_timeout_hides_then_returns_message(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q", {"VisibilityTimeout": "30"})
        await store.send(ARN + "q", "hello")
        first = await store.receive(ARN + "q", 10, None, 0)
        assert [m.body for m in first] == ["hello"]
        assert await store.receive(ARN + "q", 10, None, 0) == []
        clock.s += 29.9
        assert await store.receive(ARN + "q", 10, None, 0) == []
        clock.s += 0.2
        again = await store.receive(ARN + "q", 10, None, 0)
        assert again[0].attributes["ApproximateReceiveCount"] == "2"
        assert (
            again[0].attributes["ApproximateFirstReceiveTimestamp"]
            == first[0].attributes["ApproximateFirstReceiveTimestamp"]
        )
        # The first handle was superseded: deleting with it succeeds and deletes nothing, as in AWS.
        await store.delete(ARN + "q", first[0].receipt_handle)
        clock.s += 31
        assert len(await store.receive(ARN + "q", 1, 0, 0)) == 1

    run(tmp_path, body)


def test_delete_and_change_visibility(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q")
        await store.send(ARN + "q", "a")
        [m] = await store.receive(ARN + "q", 1, 60, 0)
        await store.change_visibility(ARN + "q", m.receipt_handle, 0)
        [m2] = await store.receive(ARN + "q", 1, 60, 0)
        assert m2.message_id == m.message_id
        with pytest.raises(MessageNotInflight):
            await store.change_visibility(ARN + "q", m.receipt_handle, 10)
        await store.delete(ARN + "q", m2.receipt_handle)
        clock.s += 120
        assert await store.receive(ARN + "q", 1, None, 0) == []
        with pytest.raises(ReceiptHandleIsInvalid):
            await store.delete(ARN + "q", "garbage")

    run(tmp_path, body)


def test_delay_counts_as_delayed_until_due(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q", {"DelaySeconds": "10"})
        await store.send(ARN + "q", "later")
        await store.send(ARN + "q", "now", delay_seconds=0)
        counts = await store.get_attributes(ARN + "q", ["All"])
        assert counts["ApproximateNumberOfMessagesDelayed"] == "1"
        assert counts["ApproximateNumberOfMessages"] == "1"
        assert [m.body for m in await store.receive(ARN + "q", 10, None, 0)] == ["now"]
        clock.s += 10
        assert [m.body for m in await store.receive(ARN + "q", 10, None, 0)] == ["later"]
        counts = await store.get_attributes(ARN + "q", ["ApproximateNumberOfMessagesNotVisible"])
        assert counts == {"ApproximateNumberOfMessagesNotVisible": "2"}

    run(tmp_path, body)


def test_redrive_moves_after_max_receive_count(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("dlq")
        policy = json.dumps({"deadLetterTargetArn": ARN + "dlq", "maxReceiveCount": "2"})
        await store.create_queue("src", {"RedrivePolicy": policy, "VisibilityTimeout": "5"})
        message_id = await store.send(ARN + "src", "poison")
        for _ in range(2):
            assert len(await store.receive(ARN + "src", 1, None, 0)) == 1
            clock.s += 5
        assert await store.receive(ARN + "src", 1, None, 0) == []
        [dead] = await store.receive(ARN + "dlq", 1, None, 0)
        assert dead.message_id == message_id and dead.body == "poison"
        attrs = await store.get_attributes(ARN + "src", ["RedrivePolicy"])
        assert json.loads(attrs["RedrivePolicy"]) == {
            "deadLetterTargetArn": ARN + "dlq",
            "maxReceiveCount": 2,
        }

    run(tmp_path, body)


def test_retention_purge(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q", {"MessageRetentionPeriod": "60"})
        await store.send(ARN + "q", "old")
        clock.s += 61
        await store.send(ARN + "q", "new")
        assert await store.purge_expired() == 1
        assert [m.body for m in await store.receive(ARN + "q", 10, None, 0)] == ["new"]

    run(tmp_path, body)


def test_create_is_idempotent_and_checks_attributes(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q", {"VisibilityTimeout": "30"})
        await store.create_queue("q")
        await store.create_queue("q", {"VisibilityTimeout": "30"})
        with pytest.raises(QueueNameExists):
            await store.create_queue("q", {"VisibilityTimeout": "31"})
        with pytest.raises(InvalidParameterValue, match="FIFO"):
            await store.create_queue("q.fifo")
        with pytest.raises(InvalidParameterValue, match="alphanumeric"):
            await store.create_queue("bad name")
        with pytest.raises(InvalidAttributeValue):
            await store.set_attributes(ARN + "q", {"VisibilityTimeout": "43201"})
        with pytest.raises(InvalidAttributeName):
            await store.set_attributes(ARN + "q", {"Colour": "blue"})
        bad_dlq = json.dumps({"deadLetterTargetArn": ARN + "missing", "maxReceiveCount": 1})
        with pytest.raises(InvalidParameterValue, match="Dead-letter target does not exist"):
            await store.set_attributes(ARN + "q", {"RedrivePolicy": bad_dlq})

    run(tmp_path, body)


def test_names_resolve_from_arns_and_urls(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q")
        assert store.queue_arn("q") == ARN + "q"
        assert await store.exists("http://example:1234/000000000000/q")
        assert not await store.exists("http://example:1234/111111111111/q")
        assert not await store.exists(ARN + "other")
        await store.delete_queue(ARN + "q")
        with pytest.raises(QueueDoesNotExist):
            await store.send(ARN + "q", "x")

    run(tmp_path, body)


def test_long_poll_wakes_on_send(tmp_path: Path) -> None:
    async def body(store: QueueStore, clock: Clock) -> None:
        await store.create_queue("q")
        waiter = asyncio.create_task(store.receive(ARN + "q", 1, None, 20))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await store.send(ARN + "q", "wake")
        got = await asyncio.wait_for(waiter, 2)
        assert [m.body for m in got] == ["wake"]

    run(tmp_path, body)


def test_messages_survive_reopen(tmp_path: Path) -> None:
    async def first(store: QueueStore, clock: Clock) -> str:
        await store.create_queue("q")
        await store.send(ARN + "q", "kept", {"k": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}})
        [m] = await store.receive(ARN + "q", 1, 100, 0)
        return m.receipt_handle

    handle = run(tmp_path, first)

    async def second(store: QueueStore, clock: Clock) -> None:
        assert await store.receive(ARN + "q", 1, None, 0) == []  # still in flight across the restart
        await store.change_visibility(ARN + "q", handle, 0)
        [m] = await store.receive(ARN + "q", 1, None, 0)
        assert m.message_attributes == {"k": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}

    run(tmp_path, second)
