"""SQS event source mappings on the real server: delivery, batch-item failures, DLQ, filters, state."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import ServerProcess, make_zip

HANDLER = make_zip(
    {
        "handler.py": (
            "def handler(event, context):\n"
            "    failures = []\n"
            "    for r in event['Records']:\n"
            "        print('MSG', r['messageId'], r['body'], r['attributes']['ApproximateReceiveCount'],\n"
            "              r['eventSource'], r['md5OfBody'], sorted(r['messageAttributes']))\n"
            "        if 'fail' in r['body']:\n"
            "            failures.append({'itemIdentifier': r['messageId']})\n"
            "    return {'batchItemFailures': failures}\n"
        )
    }
)
MSG = re.compile(r"MSG (\S+) (.*) (\d+) aws:sqs")


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def delivered(server: ServerProcess, function: str) -> list[tuple[str, str, int]]:
    """(message id, body, receive count) of every record the function printed."""
    logs = server.client("logs")
    try:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{function}")
        events = [e for page in pages for e in page["events"]]
    except ClientError:
        return []
    return [(m[1], m[2], int(m[3])) for e in events if (m := MSG.search(e["message"]))]


class Setup:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.lam = server.client("lambda")
        self.sqs = server.client("sqs")

    def function(self) -> str:
        name = f"esm-{uuid.uuid4().hex[:10]}"
        self.lam.create_function(**create_kwargs(name, HANDLER))
        self.lam.get_waiter("function_active_v2").wait(FunctionName=name)
        return name

    def queue(self, **attributes: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}", Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, arn

    def counts(self, url: str) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def wait_state(self, ident: str, state: str) -> None:
        assert wait_for(lambda: self.lam.get_event_source_mapping(UUID=ident)["State"] == state, 10)


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> Setup:
    return Setup(server)


def error_of(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_api_shapes_and_errors(env: Setup) -> None:
    name = env.function()
    url, arn = env.queue()
    created = env.lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["State"] == "Creating" and created["StateTransitionReason"] == "USER_INITIATED"
    assert created["BatchSize"] == 10 and created["MaximumBatchingWindowInSeconds"] == 0
    assert created["FunctionResponseTypes"] == []
    assert created["FunctionArn"].endswith(f":function:{name}")
    assert created["EventSourceMappingArn"].endswith(f":event-source-mapping:{created['UUID']}")
    env.wait_state(created["UUID"], "Enabled")

    code, message, status = error_of(
        env.lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name
    )
    assert (code, status) == ("ResourceConflictException", 409)
    assert message == (
        f'An event source mapping with SQS arn (" {arn} ") and function (" {name} ") already exists. '
        f"Please update or delete the existing mapping with UUID {created['UUID']}"
    )
    missing = arn + "-missing"
    code, message, _ = error_of(
        env.lam.create_event_source_mapping, EventSourceArn=missing, FunctionName=name
    )
    assert code == "InvalidParameterValueException"
    assert message.startswith("Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService")
    code, message, _ = error_of(
        env.lam.create_event_source_mapping, EventSourceArn=arn, FunctionName="nope-x"
    )
    assert (code, message) == ("InvalidParameterValueException", "Function does not exist")
    code, message, _ = error_of(
        env.lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name, BatchSize=20
    )
    assert (
        message
        == "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    )
    code, message, _ = error_of(
        env.lam.create_event_source_mapping,
        EventSourceArn=arn,
        FunctionName=name,
        FilterCriteria={"Filters": [{"Pattern": "simple string"}]},
    )
    assert message == "Invalid filter pattern definition."
    code, message, status = error_of(env.lam.get_event_source_mapping, UUID=str(uuid.uuid4()))
    assert (code, message, status) == (
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
        404,
    )

    listed = env.lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [created["UUID"]]
    updated = env.lam.update_event_source_mapping(UUID=created["UUID"], BatchSize=5)
    assert updated["State"] == "Updating" and updated["BatchSize"] == 5
    env.wait_state(created["UUID"], "Enabled")
    deleted = env.lam.delete_event_source_mapping(UUID=created["UUID"])
    assert deleted["State"] == "Deleting" and deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert error_of(env.lam.get_event_source_mapping, UUID=created["UUID"])[0] == "ResourceNotFoundException"
    cli = env.server.aws_cli("lambda", "list-event-source-mappings", "--function-name", name)
    assert json.loads(cli.stdout)["EventSourceMappings"] == []


def test_every_message_is_delivered_and_deleted(env: Setup) -> None:
    name = env.function()
    url, arn = env.queue()
    ids = set()
    for batch in range(3):
        entries = [{"Id": str(i), "MessageBody": f"m{batch}-{i}"} for i in range(10)]
        ids |= {
            m["MessageId"] for m in env.sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]
        }
    env.lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10)
    assert wait_for(lambda: {d[0] for d in delivered(env.server, name)} >= ids, 40)
    assert wait_for(lambda: env.counts(url) == (0, 0), 10)
    seen = delivered(env.server, name)
    assert len(seen) == len(ids)  # each exactly once


def test_reported_failure_ends_in_the_dead_letter_queue(env: Setup) -> None:
    name = env.function()
    dlq_url, dlq_arn = env.queue()
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url, arn = env.queue(VisibilityTimeout="3", RedrivePolicy=redrive)
    good = env.sqs.send_message(QueueUrl=url, MessageBody="good")["MessageId"]
    bad = env.sqs.send_message(QueueUrl=url, MessageBody="please-fail")["MessageId"]
    env.lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, FunctionResponseTypes=["ReportBatchItemFailures"]
    )

    def dead() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = env.sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get(
            "Messages", []
        )
        return got

    messages = wait_for(dead, 30)
    assert [m["MessageId"] for m in messages] == [bad]
    seen = delivered(env.server, name)
    assert [d for d in seen if d[0] == good] == [(good, "good", 1)]
    assert sorted(d[2] for d in seen if d[0] == bad) == [1, 2]


def test_filter_criteria_and_disable(env: Setup) -> None:
    name = env.function()
    url, arn = env.queue()
    pattern = json.dumps({"body": {"kind": ["keep"], "n": [{"numeric": [">", 1]}]}})
    mapping = env.lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, FilterCriteria={"Filters": [{"Pattern": pattern}]}
    )
    assert mapping["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    keep = env.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "n": 2}))["MessageId"]
    drop = env.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "n": 1}))["MessageId"]
    assert wait_for(lambda: keep in {d[0] for d in delivered(env.server, name)}, 20)
    assert wait_for(lambda: env.counts(url) == (0, 0), 10)  # the filtered-out message is deleted
    assert drop not in {d[0] for d in delivered(env.server, name)}

    env.lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    env.wait_state(mapping["UUID"], "Disabled")
    later = env.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "n": 5}))["MessageId"]
    time.sleep(2)
    assert later not in {d[0] for d in delivered(env.server, name)}
    assert env.counts(url) == (1, 0)
    env.lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    assert wait_for(lambda: later in {d[0] for d in delivered(env.server, name)}, 20)


def test_mapping_survives_a_restart(new_server: Callable[..., ServerProcess]) -> None:
    first = new_server()
    env = Setup(first)
    name = env.function()
    url, arn = env.queue()
    mapping = env.lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
    env.wait_state(mapping["UUID"], "Enabled")
    assert first.stop() == 0
    second = new_server(first.data_dir)
    env = Setup(second)
    assert env.lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
    sent = env.sqs.send_message(QueueUrl=url, MessageBody="after-restart")["MessageId"]
    assert wait_for(lambda: sent in {d[0] for d in delivered(second, name)}, 20)
