"""The SQS-compatible queue API on the real server, through boto3 and the AWS CLI v1."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdad.events.queues.md5 import md5_of_attributes
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess


@pytest.fixture(scope="module")
def sqs(server: ServerProcess) -> Any:
    return server.client("sqs")


@pytest.fixture
def queue(sqs: Any) -> str:
    url: str = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    return url


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def test_queue_lifecycle(sqs: Any, server: ServerProcess) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "40"}, tags={"team": "a"})[
        "QueueUrl"
    ]
    assert url == f"http://127.0.0.1:{server.port}/000000000000/{name}"
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "40"})["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "41"})
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:000000000000:{name}"
    assert attrs["VisibilityTimeout"] == "40" and attrs["MessageRetentionPeriod"] == "345600"
    assert {"CreatedTimestamp", "LastModifiedTimestamp", "ApproximateNumberOfMessagesDelayed"} <= set(attrs)
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"DelaySeconds": "5", "ReceiveMessageWaitTimeSeconds": "1"}
    )
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"])["Attributes"]
    assert got == {"DelaySeconds": "5"}
    code, message = error_of(sqs.set_queue_attributes, QueueUrl=url, Attributes={"DelaySeconds": "901"})
    assert (code, message) == ("InvalidAttributeValue", "Invalid value for the parameter DelaySeconds.")
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        sqs.get_queue_url(QueueName=name)
    assert info.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_bad_names_and_fifo(sqs: Any) -> None:
    assert error_of(sqs.create_queue, QueueName="bad name")[0] == "InvalidParameterValue"
    code, message = error_of(sqs.create_queue, QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})
    assert code == "InvalidParameterValue" and "FIFO queues are not supported" in message


def test_list_queues_prefix_and_pages(sqs: Any) -> None:
    prefix = f"list-{uuid.uuid4().hex[:6]}-"
    for i in range(3):
        sqs.create_queue(QueueName=f"{prefix}{i}")
    urls = sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{prefix}{i}" for i in range(3)]
    page = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert len(page["QueueUrls"]) == 2
    rest = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=page["NextToken"])
    assert [u.rsplit("/", 1)[1] for u in rest["QueueUrls"]] == [f"{prefix}2"] and "NextToken" not in rest
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="nothing-has-this-prefix")


def test_send_receive_attributes_and_md5s(sqs: Any, queue: str) -> None:
    attributes = {
        "City": {"DataType": "String", "StringValue": "Any City"},
        "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        "Count": {"DataType": "Number", "StringValue": "12"},
    }
    body = "héllo ✓"
    sent = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    got = sqs.receive_message(
        QueueUrl=queue,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
        MaxNumberOfMessages=10,
    )
    [message] = got["Messages"]
    assert message["MessageId"] == sent["MessageId"] and message["Body"] == body
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MessageAttributes"] == attributes
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert set(message["Attributes"]) == {
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "SentTimestamp",
        "SenderId",
    }
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(
        QueueUrl=queue, MessageAttributeNames=["City", "Nope.*"], AttributeNames=["SentTimestamp"]
    )
    [second] = again["Messages"]
    assert second["MessageAttributes"] == {"City": attributes["City"]}
    assert second["MD5OfMessageAttributes"] == md5_of_attributes({"City": attributes["City"]})
    assert list(second["Attributes"]) == ["SentTimestamp"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=second["ReceiptHandle"])
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_batches_and_their_errors(sqs: Any, queue: str) -> None:
    out = sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "a", "MessageBody": "one"},
            {"Id": "b", "MessageBody": "two", "DelaySeconds": 0},
            {"Id": "bad", "MessageBody": "nul \x00 char"},
        ],
    )
    assert sorted(s["Id"] for s in out["Successful"]) == ["a", "b"]
    [failed] = out["Failed"]
    assert failed["Id"] == "bad" and failed["Code"] == "InvalidMessageContents" and failed["SenderFault"]
    assert error_of(sqs.send_message_batch, QueueUrl=queue, Entries=[])[0] == (
        "AWS.SimpleQueueService.EmptyBatchRequest"
    )
    many = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    assert error_of(sqs.send_message_batch, QueueUrl=queue, Entries=many)[0] == (
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    )
    twice = [{"Id": "same", "MessageBody": "x"}] * 2
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=queue, Entries=twice)
    big = [{"Id": str(i), "MessageBody": "x" * 100_000} for i in range(3)]
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=queue, Entries=big)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in messages) == ["one", "two"]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[{"Id": "m0", "ReceiptHandle": messages[0]["ReceiptHandle"], "VisibilityTimeout": 100}]
        + [{"Id": "junk", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 1}],
    )
    assert [s["Id"] for s in changed["Successful"]] == ["m0"]
    assert changed["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    deleted = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
    )
    assert len(deleted["Successful"]) == 2 and deleted["Failed"] == []


def test_size_limit_and_receive_ranges(sqs: Any, queue: str) -> None:
    code, message = error_of(sqs.send_message, QueueUrl=queue, MessageBody="x" * 262_145)
    assert code == "InvalidParameterValue"
    assert message == "One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes."
    sqs.send_message(QueueUrl=queue, MessageBody="x" * 262_144)
    assert error_of(sqs.receive_message, QueueUrl=queue, MaxNumberOfMessages=11)[0] == "InvalidParameterValue"
    assert error_of(sqs.receive_message, QueueUrl=queue, WaitTimeSeconds=21)[0] == "InvalidParameterValue"
    sqs.purge_queue(QueueUrl=queue)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_long_poll_returns_when_a_message_arrives(sqs: Any, server: ServerProcess, queue: str) -> None:
    other = server.client("sqs")
    timer = threading.Timer(0.5, lambda: other.send_message(QueueUrl=queue, MessageBody="wake up"))
    started = time.monotonic()
    timer.start()
    try:
        got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)
    finally:
        timer.join()
    assert [m["Body"] for m in got["Messages"]] == ["wake up"]
    assert 0.4 < time.monotonic() - started < 3


def test_visibility_timeout_expiry_returns_message(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="again")
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    second = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5, AttributeNames=["All"])["Messages"][0]
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"


def test_redrive_to_dead_letter_queue(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    src = sqs.create_queue(QueueName=f"src-{uuid.uuid4().hex[:8]}", Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    sent = sqs.send_message(QueueUrl=src, MessageBody="poison")
    for _ in range(2):
        assert len(sqs.receive_message(QueueUrl=src, VisibilityTimeout=0)["Messages"]) == 1
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    [dead] = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert dead["MessageId"] == sent["MessageId"] and dead["Body"] == "poison"


def test_json_protocol_on_the_queue_url_path(server: ServerProcess, queue: str) -> None:
    at_url = boto3.client(
        "sqs",
        endpoint_url=queue,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 0}),
    )
    at_url.send_message(QueueUrl=queue, MessageBody="via url path")
    assert at_url.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "via url path"


def test_aws_cli(server: ServerProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    url = json.loads(server.aws_cli("sqs", "create-queue", "--queue-name", name).stdout)["QueueUrl"]
    sent = json.loads(
        server.aws_cli("sqs", "send-message", "--queue-url", url, "--message-body", "from cli").stdout
    )
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"from cli").hexdigest()
    got = json.loads(server.aws_cli("sqs", "receive-message", "--queue-url", url).stdout)
    assert got["Messages"][0]["Body"] == "from cli"
    missing = server.aws_cli("sqs", "get-queue-url", "--queue-name", "no-such-queue", check=False)
    assert missing.returncode != 0 and "NonExistentQueue" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "kill-9"])
def test_messages_survive_restart(new_server: Callable[..., ServerProcess], sig: int) -> None:
    first = new_server()
    sqs = first.client("sqs")
    url = sqs.create_queue(QueueName="durable")["QueueUrl"]
    ids = {sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")["MessageId"] for i in range(5)}
    in_flight = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"][0]
    first.stop(sig)
    second = new_server(first.data_dir)
    sqs = second.client("sqs")
    url = sqs.get_queue_url(QueueName="durable")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert {m["MessageId"] for m in got} == ids - {in_flight["MessageId"]}
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=in_flight["ReceiptHandle"], VisibilityTimeout=0)
    [back] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert back["MessageId"] == in_flight["MessageId"]
