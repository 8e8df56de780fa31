"""The CloudWatch Logs API on the real server, through boto3 and the AWS CLI v1."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def logs(server: ServerProcess) -> Any:
    return server.client("logs")


@pytest.fixture
def group(logs: Any) -> str:
    name = f"/test/logs-{uuid.uuid4().hex[:10]}"
    logs.create_log_group(logGroupName=name)
    return name


def now_ms() -> int:
    return int(time.time() * 1000)


def put(logs: Any, group: str, stream: str, messages: list[str], ts: int | None = None) -> None:
    base = ts if ts is not None else now_ms()
    events = [{"timestamp": base + i, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def error_of(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_then_get_with_forward_token_polling(logs: Any, group: str) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName="s1")
    out = logs.put_log_events(
        logGroupName=group,
        logStreamName="s1",
        logEvents=[{"timestamp": now_ms(), "message": "hello"}, {"timestamp": now_ms(), "message": "world"}],
    )
    assert out["nextSequenceToken"]
    got = logs.get_log_events(logGroupName=group, logStreamName="s1", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["hello", "world"]
    assert all({"timestamp", "message", "ingestionTime"} <= set(e) for e in got["events"])
    token = got["nextForwardToken"]
    assert token.startswith("f/") and got["nextBackwardToken"].startswith("b/")
    idle = logs.get_log_events(logGroupName=group, logStreamName="s1", nextToken=token, startFromHead=True)
    assert idle["events"] == []
    assert idle["nextForwardToken"] == token
    put(logs, group, "s1", ["again"])
    fresh = logs.get_log_events(logGroupName=group, logStreamName="s1", nextToken=token, startFromHead=True)
    assert [e["message"] for e in fresh["events"]] == ["again"]
    assert fresh["nextForwardToken"] != token


def test_describe_log_streams(logs: Any, group: str) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName="b")
    logs.create_log_stream(logGroupName=group, logStreamName="a")
    put(logs, group, "a", ["x"], ts=now_ms() - 1000)
    put(logs, group, "b", ["y"])
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a", "b"]
    assert streams[0]["arn"].endswith(f":log-group:{group}:log-stream:a")
    assert {"creationTime", "firstEventTimestamp", "lastEventTimestamp", "lastIngestionTime"} <= set(
        streams[0]
    )
    latest = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True, limit=1)
    assert [s["logStreamName"] for s in latest["logStreams"]] == ["b"]
    assert "nextToken" in latest


def test_filter_across_streams_with_patterns(logs: Any, group: str) -> None:
    for stream in ("one", "two"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = now_ms()
    put(logs, group, "one", ["ERROR disk full", "INFO fine"], ts=base)
    put(
        logs,
        group,
        "two",
        ["ERROR Task timed out", json.dumps({"level": "error", "latency": 250})],
        ts=base + 10,
    )
    got = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", interleaved=True)
    assert [(e["logStreamName"], e["message"]) for e in got["events"]] == [
        ("one", "ERROR disk full"),
        ("two", "ERROR Task timed out"),
    ]
    assert all(e["eventId"] and e["ingestionTime"] for e in got["events"])
    phrase = logs.filter_log_events(logGroupName=group, filterPattern='"Task timed out"')
    assert [e["message"] for e in phrase["events"]] == ["ERROR Task timed out"]
    structured = logs.filter_log_events(
        logGroupName=group, filterPattern='{ $.level = "error" && $.latency > 100 }'
    )
    assert [e["logStreamName"] for e in structured["events"]] == ["two"]
    only_one = logs.filter_log_events(logGroupName=group, logStreamNames=["one"])
    assert [e["message"] for e in only_one["events"]] == ["ERROR disk full", "INFO fine"]
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 1}
    )
    assert [e["message"] for p in pages for e in p["events"]][:2] == ["ERROR disk full", "INFO fine"]
    code, message, _ = error_of(logs.filter_log_events, logGroupName=group, filterPattern="{ $.x = ")
    assert (code, message) == ("InvalidParameterException", "Invalid filter pattern")


def test_describe_log_groups_paginates_over_60(logs: Any) -> None:
    prefix = f"/test/many-{uuid.uuid4().hex[:8]}/"
    names = [f"{prefix}{i:02d}" for i in range(60)]
    for name in names:
        logs.create_log_group(logGroupName=name)
    first = logs.describe_log_groups(logGroupNamePrefix=prefix)
    assert len(first["logGroups"]) == 50 and "nextToken" in first
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
    seen = [g["logGroupName"] for p in pages for g in p["logGroups"]]
    assert seen == names
    group = first["logGroups"][0]
    assert group["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{names[0]}:*"
    assert {"creationTime", "storedBytes", "metricFilterCount"} <= set(group)


def test_errors_for_missing_and_duplicate(logs: Any, group: str) -> None:
    missing = "/test/missing-" + uuid.uuid4().hex
    assert error_of(logs.create_log_group, logGroupName=group) == (
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
        400,
    )
    code, message, _ = error_of(logs.describe_log_streams, logGroupName=missing)
    assert (code, message) == ("ResourceNotFoundException", "The specified log group does not exist.")
    code, message, _ = error_of(logs.get_log_events, logGroupName=group, logStreamName="nope")
    assert (code, message) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    code, _, _ = error_of(
        logs.put_log_events,
        logGroupName=missing,
        logStreamName="s",
        logEvents=[{"timestamp": 1, "message": "x"}],
    )
    assert code == "ResourceNotFoundException"
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    code, _, _ = error_of(logs.create_log_stream, logGroupName=group, logStreamName="s")
    assert code == "ResourceAlreadyExistsException"
    code, _, _ = error_of(logs.delete_log_group, logGroupName=missing)
    assert code == "ResourceNotFoundException"
    code, _, _ = error_of(logs.put_retention_policy, logGroupName=group, retentionInDays=2)
    assert code == "InvalidParameterException"


def test_retention_and_deletion(logs: Any, group: str) -> None:
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    described = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described[0]["retentionInDays"] == 7
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.delete_log_stream(logGroupName=group, logStreamName="s")
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_tail_follow_protocol(logs: Any, group: str) -> None:
    """What AWS CLI v2's ``aws logs tail --follow`` does: FilterLogEvents with startTime, then nextToken
    until none, then startTime = newest timestamp seen, de-duplicating by eventId."""
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    start = now_ms() - 60_000
    put(logs, group, "s", [f"line {i}" for i in range(5)], ts=start + 1000)
    kwargs: dict[str, Any] = {"logGroupName": group, "interleaved": True, "startTime": start, "limit": 2}
    seen_ids: dict[int, set[str]] = defaultdict(set)
    printed: list[str] = []

    def poll() -> None:
        nonlocal seen_ids
        while True:
            response = logs.filter_log_events(**kwargs)
            for event in response["events"]:
                if event["eventId"] not in seen_ids[event["timestamp"]]:
                    seen_ids[event["timestamp"]].add(event["eventId"])
                    printed.append(event["message"])
            if seen_ids:
                newest = max(seen_ids)
                seen_ids = defaultdict(set, {newest: seen_ids[newest]})
            if "nextToken" in response:
                kwargs["nextToken"] = response["nextToken"]
                continue
            if seen_ids:
                kwargs["startTime"] = max(seen_ids)
            kwargs.pop("nextToken", None)
            return

    poll()
    assert printed == [f"line {i}" for i in range(5)]
    poll()
    assert printed == [f"line {i}" for i in range(5)]
    put(logs, group, "s", ["late one", "late two"], ts=start + 2000)
    poll()
    assert printed[5:] == ["late one", "late two"]


def test_aws_cli_v1(server: ServerProcess, logs: Any, group: str) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    put(logs, group, "s", ["INFO ok", "ERROR broken", "ERROR again"])
    described = json.loads(
        server.aws_cli("logs", "describe-log-groups", "--log-group-name-prefix", group).stdout
    )
    assert [g["logGroupName"] for g in described["logGroups"]] == [group]
    filtered = server.aws_cli(
        "logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "ERROR"
    )
    events = json.loads(filtered.stdout)["events"]
    assert [e["message"] for e in events] == ["ERROR broken", "ERROR again"]
    got = server.aws_cli("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", "s")
    assert [e["message"] for e in json.loads(got.stdout)["events"]] == [
        "INFO ok",
        "ERROR broken",
        "ERROR again",
    ]
    missing = server.aws_cli("logs", "describe-log-streams", "--log-group-name", group + "-nope", check=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
