"""The log store: buffered appends, PutLogEvents rules, token semantics, pagination, retention."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lambdad.http.errors import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from lambdad.observe.logstore import LogStore
from lambdad.observe.logwriter import CATCH_UP_EVENTS, DAY_MS, HOUR_MS, WRITER_NICE, Writer

T = TypeVar("T")
NOW = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> float:
        return self.ms / 1000


def run(tmp_path: Path, body: Callable[[LogStore, Clock], Awaitable[T]]) -> T:
    async def main() -> T:
        clock = Clock()
        store = LogStore(tmp_path / "logs.db", "us-east-1", "000000000000", clock=clock)
        await store.start()
        try:
            return await body(store, clock)
        finally:
            await store.close()

    return asyncio.run(main())


async def messages(store: LogStore, group: str, stream: str, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"start": None, "end": None, "token": None, "limit": None, "start_from_head": True}
    args.update(kw)
    page = await store.get_log_events(group, stream, **args)
    return [e["message"] for e in page["events"]]


def test_append_creates_group_and_stream_and_flush_writes(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("/aws/lambda/f", "s1", [(NOW, "START"), (NOW + 1, "hello")])
        await store.flush()
        groups = await store.describe_log_groups(None, None, None, None)
        assert [g["logGroupName"] for g in groups["logGroups"]] == ["/aws/lambda/f"]
        group = groups["logGroups"][0]
        assert group["arn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/f:*"
        assert group["storedBytes"] == len("START") + len("hello")
        assert await messages(store, "/aws/lambda/f", "s1") == ["START", "hello"]

    run(tmp_path, body)


def test_background_task_flushes_without_an_explicit_flush(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW, "later")])
        for _ in range(50):
            await asyncio.sleep(0.05)
            if (await store.describe_log_groups(None, None, None, None))["logGroups"]:
                break
        assert await messages(store, "g", "s") == ["later"]

    run(tmp_path, body)


def test_close_flushes_and_data_survives_reopen(tmp_path: Path) -> None:
    async def first(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW, "kept")])

    async def second(store: LogStore, clock: Clock) -> list[str]:
        return await messages(store, "g", "s")

    run(tmp_path, first)
    assert run(tmp_path, second) == ["kept"]


def test_control_operations_raise_aws_errors(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        await store.create_log_group("g")
        with pytest.raises(ResourceAlreadyExistsException, match="The specified log group already exists"):
            await store.create_log_group("g")
        with pytest.raises(ResourceNotFoundException, match="The specified log group does not exist."):
            await store.create_log_stream("nope", "s")
        await store.create_log_stream("g", "s")
        with pytest.raises(ResourceAlreadyExistsException):
            await store.create_log_stream("g", "s")
        with pytest.raises(ResourceNotFoundException, match="The specified log stream does not exist."):
            await store.put_log_events("g", "other", [{"timestamp": NOW, "message": "x"}])
        with pytest.raises(ResourceNotFoundException, match="log stream does not exist"):
            await store.get_log_events("g", "other", None, None, None, None, False)
        await store.delete_log_stream("g", "s")
        with pytest.raises(ResourceNotFoundException):
            await store.delete_log_stream("g", "s")
        await store.delete_log_group("g")
        with pytest.raises(ResourceNotFoundException):
            await store.delete_log_group("g")
        with pytest.raises(ResourceNotFoundException):
            await store.put_retention_policy("g", 7)

    run(tmp_path, body)


def test_put_log_events_rules(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        await store.create_log_group("g")
        await store.create_log_stream("g", "s")
        first = await store.put_log_events("g", "s", [{"timestamp": NOW, "message": "a"}])
        second = await store.put_log_events("g", "s", [{"timestamp": NOW, "message": "b"}])
        assert first["nextSequenceToken"] != second["nextSequenceToken"]
        with pytest.raises(InvalidParameterException, match="chronological order"):
            await store.put_log_events(
                "g", "s", [{"timestamp": NOW, "message": "x"}, {"timestamp": NOW - 1, "message": "y"}]
            )
        with pytest.raises(InvalidParameterException, match="24 hours"):
            await store.put_log_events(
                "g",
                "s",
                [{"timestamp": NOW - DAY_MS - 1, "message": "x"}, {"timestamp": NOW, "message": "y"}],
            )
        batch = [
            {"timestamp": NOW - 15 * DAY_MS, "message": "old"},
            {"timestamp": NOW - 15 * DAY_MS + 1, "message": "old2"},
        ]
        out = await store.put_log_events("g", "s", batch)
        assert out["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
        out = await store.put_log_events(
            "g",
            "s",
            [{"timestamp": NOW, "message": "ok"}, {"timestamp": NOW + 3 * HOUR_MS, "message": "new"}],
        )
        assert out["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
        await store.put_retention_policy("g", 1)
        out = await store.put_log_events("g", "s", [{"timestamp": NOW - 2 * DAY_MS, "message": "expired"}])
        assert out["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 0}
        assert await messages(store, "g", "s") == ["a", "b", "ok"]
        with pytest.raises(InvalidParameterException, match="enum value set"):
            await store.put_retention_policy("g", 2)

    run(tmp_path, body)


def test_get_log_events_tokens_behave_as_aws(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW + i, f"m{i}") for i in range(10)])
        await store.flush()
        tail = await store.get_log_events("g", "s", None, None, None, 3, False)
        assert [e["message"] for e in tail["events"]] == ["m7", "m8", "m9"]
        older = await store.get_log_events("g", "s", None, None, tail["nextBackwardToken"], 3, False)
        assert [e["message"] for e in older["events"]] == ["m4", "m5", "m6"]
        newer = await store.get_log_events("g", "s", None, None, older["nextForwardToken"], 3, False)
        assert [e["message"] for e in newer["events"]] == ["m7", "m8", "m9"]
        # Polling at the end: nothing new gives back the very token that was passed in.
        idle = await store.get_log_events("g", "s", None, None, tail["nextForwardToken"], None, False)
        assert idle["events"] == []
        assert idle["nextForwardToken"] == tail["nextForwardToken"]
        store.append("g", "s", [(NOW + 20, "fresh")])
        await store.flush()
        fresh = await store.get_log_events("g", "s", None, None, idle["nextForwardToken"], None, False)
        assert [e["message"] for e in fresh["events"]] == ["fresh"]
        assert fresh["events"][0]["ingestionTime"] == NOW
        head = await messages(store, "g", "s", limit=2)
        assert head == ["m0", "m1"]
        assert await messages(store, "g", "s", start=NOW + 2, end=NOW + 4) == ["m2", "m3"]
        with pytest.raises(InvalidParameterException, match="nextToken"):
            await store.get_log_events("g", "s", None, None, "f/garbage", None, False)

    run(tmp_path, body)


def test_empty_stream_token_picks_up_later_events(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        await store.create_log_group("g")
        await store.create_log_stream("g", "s")
        first = await store.get_log_events("g", "s", None, None, None, None, False)
        assert first["events"] == []
        store.append("g", "s", [(NOW, "x")])
        await store.flush()
        later = await store.get_log_events("g", "s", None, None, first["nextForwardToken"], None, False)
        assert [e["message"] for e in later["events"]] == ["x"]

    run(tmp_path, body)


def test_describe_log_groups_prefix_pattern_and_pages(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        for i in range(7):
            await store.create_log_group(f"/aws/lambda/fn-{i}")
        await store.create_log_group("/other/Thing")
        names: list[str] = []
        token = None
        while True:
            page = await store.describe_log_groups("/aws/lambda/", None, token, 3)
            names += [g["logGroupName"] for g in page["logGroups"]]
            token = page.get("nextToken")
            if token is None:
                break
        assert names == [f"/aws/lambda/fn-{i}" for i in range(7)]
        found = await store.describe_log_groups(None, "thing", None, None)
        assert [g["logGroupName"] for g in found["logGroups"]] == ["/other/Thing"]
        with pytest.raises(InvalidParameterException, match="mutually exclusive"):
            await store.describe_log_groups("/a", "b", None, None)

    run(tmp_path, body)


def test_describe_log_streams_order_and_pages(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "b", [(NOW + 5, "x")])
        store.append("g", "a", [(NOW + 9, "x")])
        store.append("g", "c", [(NOW + 1, "x")])
        await store.flush()
        await store.create_log_stream("g", "empty")
        by_name = await store.describe_log_streams("g", None, None, False, None, None)
        assert [s["logStreamName"] for s in by_name["logStreams"]] == ["a", "b", "c", "empty"]
        stream = by_name["logStreams"][0]
        assert stream["firstEventTimestamp"] == stream["lastEventTimestamp"] == NOW + 9
        assert stream["lastIngestionTime"] == NOW
        assert stream["arn"].endswith(":log-group:g:log-stream:a")
        assert "firstEventTimestamp" not in by_name["logStreams"][3]
        names: list[str] = []
        token = None
        while True:
            page = await store.describe_log_streams("g", None, "LastEventTime", True, token, 2)
            names += [s["logStreamName"] for s in page["logStreams"]]
            token = page.get("nextToken")
            if token is None:
                break
        assert names == ["a", "b", "c", "empty"]
        prefixed = await store.describe_log_streams("g", "e", None, False, None, None)
        assert [s["logStreamName"] for s in prefixed["logStreams"]] == ["empty"]
        with pytest.raises(InvalidParameterException, match="LastEventTime"):
            await store.describe_log_streams("g", "e", "LastEventTime", False, None, None)
        with pytest.raises(ResourceNotFoundException):
            await store.describe_log_streams("missing", None, None, False, None, None)

    run(tmp_path, body)


def test_filter_log_events_interleaves_streams_and_pages(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "one", [(NOW + 0, "ERROR a"), (NOW + 2, "INFO b"), (NOW + 4, "ERROR c")])
        store.append("g", "two", [(NOW + 1, "ERROR d"), (NOW + 3, "ERROR e")])
        await store.flush()

        async def page(**kw: Any) -> dict[str, Any]:
            args: dict[str, Any] = dict.fromkeys(
                ["stream_names", "stream_prefix", "start", "end", "pattern", "token", "limit"]
            )
            args.update(kw)
            return await store.filter_log_events("g", **args)

        everything = await page()
        assert [e["message"] for e in everything["events"]] == [
            "ERROR a",
            "ERROR d",
            "INFO b",
            "ERROR e",
            "ERROR c",
        ]
        assert "nextToken" not in everything
        event = everything["events"][1]
        assert event["logStreamName"] == "two"
        assert event["timestamp"] == NOW + 1
        assert event["ingestionTime"] == NOW
        assert len(event["eventId"]) == 56
        errors: list[str] = []
        token = None
        while True:
            got = await page(pattern="ERROR", limit=2, token=token)
            errors += [e["message"] for e in got["events"]]
            token = got.get("nextToken")
            if token is None:
                break
        assert errors == ["ERROR a", "ERROR d", "ERROR e", "ERROR c"]
        assert [e["message"] for e in (await page(stream_names=["two"]))["events"]] == ["ERROR d", "ERROR e"]
        assert [e["message"] for e in (await page(stream_prefix="on", start=NOW + 2))["events"]] == [
            "INFO b",
            "ERROR c",
        ]
        assert [e["message"] for e in (await page(end=NOW + 1))["events"]] == ["ERROR a", "ERROR d"]
        assert (await page(stream_names=["nope"]))["events"] == []
        with pytest.raises(InvalidParameterException, match="Invalid filter pattern"):
            await page(pattern="{ $.x = }")
        with pytest.raises(InvalidParameterException, match="mutually exclusive"):
            await page(stream_names=["one"], stream_prefix="o")
        with pytest.raises(ResourceNotFoundException):
            await store.filter_log_events("nope", None, None, None, None, None, None, None)

    run(tmp_path, body)


def test_retention_purge_deletes_old_events(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW - 3 * DAY_MS, "old"), (NOW, "new")])
        await store.flush()
        await store.put_retention_policy("g", 1)
        assert await store.purge_expired() == 1
        assert await messages(store, "g", "s") == ["new"]
        group = (await store.describe_log_groups(None, None, None, None))["logGroups"][0]
        assert group["retentionInDays"] == 1
        assert group["storedBytes"] == 3
        await store.delete_retention_policy("g")
        group = (await store.describe_log_groups(None, None, None, None))["logGroups"][0]
        assert "retentionInDays" not in group

    run(tmp_path, body)


def test_append_after_group_deleted_recreates_it(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW, "one")])
        await store.flush()
        await store.delete_log_group("g")
        store.append("g", "s", [(NOW, "two")])
        await store.flush()
        assert await messages(store, "g", "s") == ["two"]

    run(tmp_path, body)


def test_a_batch_larger_than_an_insert_chunk_keeps_every_event_in_order(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        lines = [(NOW + i // 7, f"line {i}") for i in range(300)]  # chunks of 128, 128, 32, 8 and 4
        store.append("g", "s", lines)
        await store.flush()
        got = await messages(store, "g", "s", limit=10_000)
        assert got == [message for _, message in lines]
        group = (await store.describe_log_groups(None, None, None, None))["logGroups"][0]
        assert group["storedBytes"] == sum(len(message) for _, message in lines)

    run(tmp_path, body)


def _writer_nice(store: LogStore) -> int:
    assert store.writer.pid is not None
    return os.getpriority(os.PRIO_PROCESS, store.writer.pid)


def test_the_writer_yields_the_cpu_while_it_keeps_up_and_not_once_it_falls_behind(tmp_path: Path) -> None:
    # Only where the priority can be raised again; otherwise lowering it could starve log storage.
    lowered = WRITER_NICE if os.geteuid() == 0 else 0

    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW, "small")])
        await store.flush()
        assert _writer_nice(store) == lowered
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the event loop's thread keeps its priority
        store.append("g", "s", [(NOW, f"backlog {i}") for i in range(CATCH_UP_EVENTS)])
        await store.flush()
        assert _writer_nice(store) == 0
        store.append("g", "s", [(NOW, "small again")])
        await store.flush()
        assert _writer_nice(store) == lowered
        assert len(await messages(store, "g", "s", limit=10_000)) == 10_000  # a full page: all stored

    run(tmp_path, body)


def test_a_writer_process_that_died_is_started_again_and_nothing_later_is_lost(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> None:
        store.append("g", "s", [(NOW, "before")])
        await store.flush()
        first = store.writer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        store.append("g", "s", [(NOW + 1, "after")])
        await store.flush()
        assert store.writer.pid not in (None, first)
        assert await messages(store, "g", "s") == ["before", "after"]
        with pytest.raises(ResourceAlreadyExistsException):  # errors still come back as AWS's
            await store.create_log_group("g")

    run(tmp_path, body)


def test_closing_the_store_ends_its_writer_process(tmp_path: Path) -> None:
    async def body(store: LogStore, clock: Clock) -> int:
        store.append("g", "s", [(NOW, "line")])
        pid = store.writer.pid
        assert pid is not None
        return pid

    pid = run(tmp_path, body)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_batch_sent_again_after_its_writer_died_is_stored_once(tmp_path: Path) -> None:
    """A writer may die after committing a batch and before answering; the batch is then sent to the
    next writer, which must not store it again."""
    path = tmp_path / "logs.db"
    first = Writer(path)
    first.write_batch([("g", "s", NOW, "once")], NOW, "store-a", 1)
    first.conn.close()
    second = Writer(path)  # what the server starts after the first one died
    second.write_batch([("g", "s", NOW, "once")], NOW, "store-a", 1)
    second.write_batch([("g", "s", NOW + 1, "next")], NOW, "store-a", 2)
    second.write_batch([("g", "s", NOW + 2, "other store")], NOW, "store-b", 1)
    rows = second.conn.execute("SELECT message FROM events ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["once", "next", "other store"]
    second.conn.close()
