"""``lambdad logs``: paging, de-duplication by eventId, and the follow loop, with a fake fetch."""

from __future__ import annotations

from typing import Any

import pytest

from lambdad.client import logs


def event(event_id: str, ms: int, message: str = "line\n") -> dict[str, Any]:
    stream = "2024/05/01/[$LATEST]0123456789abcdef0123456789abcdef"
    return {"eventId": event_id, "timestamp": ms, "message": message, "logStreamName": stream}


class FakeLogs:
    """Serves the events at or after startTime, two per page."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(dict(request))
        matching = [e for e in self.events if e["timestamp"] >= request["startTime"]]
        offset = int(request.get("nextToken", 0))
        page: dict[str, Any] = {"events": matching[offset : offset + 2]}
        if offset + 2 < len(matching):
            page["nextToken"] = str(offset + 2)
        return page


def test_poll_follows_next_token_to_the_end() -> None:
    fake = FakeLogs([event(str(i), 1000 + i) for i in range(5)])
    tail = logs.LogTail(fake, "/aws/lambda/f", 0, "ERROR")
    assert [e["eventId"] for e in tail.poll()] == ["0", "1", "2", "3", "4"]
    assert [r.get("nextToken") for r in fake.requests] == [None, "2", "4"]
    assert all(r["filterPattern"] == "ERROR" and r["logGroupName"] == "/aws/lambda/f" for r in fake.requests)


def test_next_poll_starts_at_newest_and_drops_repeats() -> None:
    fake = FakeLogs([event("a", 1000), event("b", 2000)])
    tail = logs.LogTail(fake, "/aws/lambda/f", 0)
    assert len(tail.poll()) == 2
    fake.events.append(event("c", 2000))  # same millisecond as b: b comes back, only c is new
    fake.events.append(event("d", 3000))
    assert [e["eventId"] for e in tail.poll()] == ["c", "d"]
    assert fake.requests[-1]["startTime"] == 2000
    assert tail.poll() == []
    assert set(tail.seen) == {"d"}


def test_follow_polls_until_interrupted() -> None:
    fake = FakeLogs([event("a", 1000, "first\n")])
    printed: list[str] = []
    sleeps = 0

    def sleep(_: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps == 1:
            fake.events.append(event("b", 1500, "second\n"))
        if sleeps == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        logs.tail(logs.LogTail(fake, "g", 0), True, printed.append, sleep)
    assert [line.split(" ", 2)[2] for line in printed] == ["first", "second"]


def test_without_follow_one_pass() -> None:
    printed: list[str] = []
    logs.tail(logs.LogTail(FakeLogs([event("a", 0)]), "g", 0), False, printed.append, lambda _: None)
    assert printed == ["1970-01-01T00:00:00.000Z 01234567 line"]
