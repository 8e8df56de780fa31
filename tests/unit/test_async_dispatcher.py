"""The durable async queue and its dispatcher, with a fake invoker: retries, throttles, bounds, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lambdad.environments.environment import InvokeOutcome
from lambdad.invoke.async_queue import AsyncDispatcher, AsyncStore, Result
from lambdad.invoke.concurrency import Throttled
from lambdad.invoke.destinations import dead_letter_attributes, invocation_record
from lambdad.store.base import FunctionRecord


def outcome(kind: str = "ok", body: Any = None) -> InvokeOutcome:
    payload = json.dumps(body if body is not None else {"errorMessage": "boom", "errorType": "Exception"})
    return InvokeOutcome(kind, payload.encode(), None, b"", 1.0, 10, False)  # type: ignore[arg-type]


class FakeInvoker:
    def __init__(self, script: Callable[[int], InvokeOutcome | Exception], delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.calls: list[str] = []
        self.running = 0
        self.most_running = 0

    async def resolve_active(self, name: str, qualifier: str | None) -> FunctionRecord:
        return FunctionRecord(
            name, "$LATEST", {"FunctionArn": f"arn:aws:lambda:us-east-1:0:function:{name}"}, "x"
        )

    async def run(
        self,
        record: FunctionRecord,
        payload: bytes,
        request_id: str,
        client_context: str | None,
        qualifier: str | None = None,
    ) -> tuple[InvokeOutcome, list[str]]:
        self.calls.append(request_id)
        result = self.script(len(self.calls))
        if isinstance(result, Exception):
            raise result
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(self.delay)
        self.running -= 1
        return result, []


class FakeLimiter:
    account_limit = 100

    def __init__(self, capacity: int = 10) -> None:
        self.limit = capacity

    def capacity(self, function: str) -> int:
        return self.limit


class FakeMetrics:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def record(self, name: str, dimensions: dict[str, str], value: float, unit: str) -> None:
        self.seen.append((name, value))


def run(
    tmp_path: Path,
    invoker: FakeInvoker,
    body: Callable[[AsyncDispatcher, list[Result]], Awaitable[None]],
    capacity: int = 10,
    retry_delay_s: float = 0.01,
) -> FakeMetrics:
    metrics = FakeMetrics()

    async def main() -> None:
        store = AsyncStore(tmp_path / "async.db")
        dispatcher = AsyncDispatcher(store, invoker, FakeLimiter(capacity), metrics, retry_delay_s)
        results: list[Result] = []

        async def collect(result: Result, config: dict[str, Any], record: FunctionRecord | None) -> None:
            results.append(result)

        dispatcher.on_result = collect
        await dispatcher.start()
        try:
            await body(dispatcher, results)
        finally:
            await dispatcher.close()
            await store.close()

    asyncio.run(main())
    return metrics


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_failures_are_retried_with_the_same_request_id_then_exhausted(tmp_path: Path) -> None:
    invoker = FakeInvoker(lambda n: outcome("function_error"))

    async def body(dispatcher: AsyncDispatcher, results: list[Result]) -> None:
        await dispatcher.submit("f", None, b'{"a": 1}', "req-1")
        await until(lambda: bool(results))
        assert results[0].condition == "RetriesExhausted" and results[0].event.attempts == 3
        assert results[0].payload == b'{"a": 1}'
        await until(lambda: dispatcher.pending == 0)

    metrics = run(tmp_path, invoker, body)
    assert invoker.calls == ["req-1"] * 3
    assert ("AsyncEventsDropped", 1) in metrics.seen and ("AsyncEventsReceived", 1) in metrics.seen


def test_retry_attempts_and_event_age_come_from_the_config(tmp_path: Path) -> None:
    invoker = FakeInvoker(lambda n: outcome("timeout"))

    async def body(dispatcher: AsyncDispatcher, results: list[Result]) -> None:
        await dispatcher.store.put_config("f", "$LATEST", {"MaximumRetryAttempts": 0})
        await dispatcher.store.put_config("g", "$LATEST", {"MaximumEventAgeInSeconds": 60})
        await dispatcher.submit("f", None, b"{}", "req-f")
        await dispatcher.submit("g", None, b"{}", "req-g")
        await until(lambda: len(results) == 2)
        by_id = {r.event.request_id: r for r in results}
        assert (by_id["req-f"].condition, by_id["req-f"].event.attempts) == ("RetriesExhausted", 1)
        # The next retry would be 100 s later, past the 60 s age limit.
        assert (by_id["req-g"].condition, by_id["req-g"].event.attempts) == ("EventAgeExceeded", 1)

    run(tmp_path, invoker, body, retry_delay_s=100)


def test_throttles_wait_without_counting_as_attempts(tmp_path: Path) -> None:
    invoker = FakeInvoker(lambda n: Throttled("x") if n <= 3 else outcome("ok", {"r": 1}))

    async def body(dispatcher: AsyncDispatcher, results: list[Result]) -> None:
        await dispatcher.submit("f", None, b"{}", "req-1")
        await until(lambda: bool(results))
        assert results[0].condition == "Success" and results[0].event.attempts == 1

    run(tmp_path, invoker, body)
    assert len(invoker.calls) == 4


def test_parallelism_is_bounded_by_the_function_capacity(tmp_path: Path) -> None:
    invoker = FakeInvoker(lambda n: outcome("ok", {}), delay=0.02)

    async def body(dispatcher: AsyncDispatcher, results: list[Result]) -> None:
        for i in range(12):
            await dispatcher.submit("f", None, b"{}", f"req-{i}")
        await until(lambda: len(results) == 12)

    run(tmp_path, invoker, body, capacity=3)
    assert invoker.most_running == 3


def test_the_backlog_survives_a_restart(tmp_path: Path) -> None:
    async def fill() -> None:
        store = AsyncStore(tmp_path / "async.db")
        for i in range(5):
            await store.add(f"req-{i}", "f", "$LATEST", b"{}", 0 if i == 4 else int(time.time() * 1000))
        await store.close()

    asyncio.run(fill())
    invoker = FakeInvoker(lambda n: outcome("ok", {}))

    async def body(dispatcher: AsyncDispatcher, results: list[Result]) -> None:
        await until(lambda: len(results) == 5)
        conditions = {r.event.request_id: r.condition for r in results}
        # req-4 was received at epoch 0: far older than six hours, so dropped without running
        assert conditions == {f"req-{i}": "Success" for i in range(4)} | {"req-4": "EventAgeExceeded"}
        await until(lambda: dispatcher.pending == 0)

    run(tmp_path, invoker, body)
    assert sorted(invoker.calls) == [f"req-{i}" for i in range(4)]

    async def empty() -> None:
        store = AsyncStore(tmp_path / "async.db")
        assert await store.backlog() == []
        await store.close()

    asyncio.run(empty())


def test_invocation_record_and_dead_letter_attributes(tmp_path: Path) -> None:
    from lambdad.invoke.async_queue import AsyncEvent

    event = AsyncEvent(1, "req-1", "f", "$LATEST", 0, 0, attempts=3)
    result = Result(event, b'{"x": 1}', outcome("function_error"), "$LATEST", "RetriesExhausted")
    doc = invocation_record(result, "arn:aws:lambda:us-east-1:0:function:f:$LATEST", 0.5)
    assert doc["timestamp"] == "1970-01-01T00:00:00.500Z"
    assert doc["requestContext"]["approximateInvokeCount"] == 3
    assert doc["requestPayload"] == {"x": 1}
    assert doc["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert dead_letter_attributes(result)["ErrorMessage"] == {"DataType": "String", "StringValue": "boom"}
