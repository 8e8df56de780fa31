"""Asynchronous invocation through the real server: durability across SIGKILL, retries, destinations,
the dead-letter queue and the EventInvokeConfig API."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import ACCOUNT, REGION, ServerProcess, make_zip

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

MARKER = "import json\ndef handler(event, context):\n    print('MARK', json.dumps(event))\n    return event\n"
FAILING = (
    "def handler(event, context):\n"
    "    print('ATTEMPT', context.aws_request_id)\n"
    "    raise Exception('intentional failure')\n"
)
_SLOW = "def handler(event, context):\n    time.sleep(0.05)\n    return _h(event, context)\n"
SUCCEEDING = "def handler(event, context):\n    return {'echo': event, 'ok': True}\n"


def deploy(lam: Any, source: str, **overrides: Any) -> str:
    name = f"as-{uuid.uuid4().hex[:10]}"
    lam.create_function(**create_kwargs(name, make_zip({"handler.py": source}), **overrides))
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def log_lines(server: ServerProcess, name: str, word: str) -> list[str]:
    logs = server.client("logs")
    found: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": f"/aws/lambda/{name}"}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            found += [e["message"] for e in page["events"] if e["message"].startswith(word)]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def receive_one(sqs: Any, url: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=2, MessageAttributeNames=["All"], MaxNumberOfMessages=1
        )
        if got.get("Messages"):
            message: dict[str, Any] = got["Messages"][0]
            return message
    raise AssertionError(f"no message arrived in {url}")


def queue(server: ServerProcess) -> tuple[Any, str, str]:
    sqs = server.client("sqs")
    name = f"q-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return sqs, url, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def test_every_accepted_event_runs_across_sigkill(
    new_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "durable"
    first = new_server(data)
    lam = first.client("lambda")
    name = deploy(lam, "import time\n" + MARKER.replace("def handler", "def _h") + _SLOW)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    accepted: set[int] = set()

    def send(i: int, client: Any) -> None:
        try:
            answer = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": i}))
        except Exception:
            return  # refused or cut off by the kill: not accepted, nothing promised
        if answer["StatusCode"] == 202:
            accepted.add(i)

    with ThreadPoolExecutor(8) as workers:
        list(workers.map(lambda i: send(i, lam), range(150)))
    assert first.proc is not None
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    assert len(accepted) == 150

    second = new_server(data)
    lam2 = second.client("lambda")
    with ThreadPoolExecutor(8) as workers:
        list(workers.map(lambda i: send(i, lam2), range(150, 300)))
    assert len(accepted) == 300

    def observed() -> set[int] | None:
        seen = {json.loads(line.split(" ", 1)[1])["n"] for line in log_lines(second, name, "MARK")}
        return seen if accepted <= seen else None

    assert wait_for(observed, 60, "every accepted event in the logs") >= accepted
    assert "async backlog loaded" in second.log(), "the kill left no backlog: the restart path went untested"


def test_failures_retry_then_reach_the_on_failure_queue(new_server: Callable[..., ServerProcess]) -> None:
    server = new_server(args=["--async-retry-delay", "0.5"])
    lam = server.client("lambda")
    sqs, url, arn = queue(server)
    name = deploy(lam, FAILING)
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2, DestinationConfig={"OnFailure": {"Destination": arn}}
    )
    answer = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"message": "hi"}')
    request_id = answer["ResponseMetadata"]["RequestId"]
    body = json.loads(receive_one(sqs, url)["Body"])
    assert body["version"] == "1.0" and body["timestamp"].endswith("Z")
    assert body["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert body["requestPayload"] == {"message": "hi"}
    assert body["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert body["responsePayload"]["errorMessage"] == "intentional failure"
    assert body["responsePayload"]["errorType"] == "Exception"
    attempts = wait_for(lambda: len(log_lines(server, name, "ATTEMPT")) == 3 or None, 10, "three attempts")
    assert attempts and {line.strip() for line in log_lines(server, name, "ATTEMPT")} == {
        f"ATTEMPT {request_id}"
    }


def test_success_goes_to_the_on_success_function(server: ServerProcess, lam: Any) -> None:
    receiver = deploy(lam, MARKER)
    name = deploy(lam, SUCCEEDING)
    target = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{receiver}"
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": target}}
    )
    answer = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"a": 1}')
    lines = wait_for(lambda: log_lines(server, receiver, "MARK"), 30, "the destination's invocation")
    record = json.loads(lines[0].split(" ", 1)[1])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["requestId"] == answer["ResponseMetadata"]["RequestId"]
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == {"a": 1}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"echo": {"a": 1}, "ok": True}


def test_dead_letter_queue_receives_the_event(new_server: Callable[..., ServerProcess]) -> None:
    server = new_server(args=["--async-retry-delay", "0.2"])
    lam = server.client("lambda")
    sqs, url, arn = queue(server)
    name = deploy(lam, FAILING, DeadLetterConfig={"TargetArn": arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    answer = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"raise_error": 1}')
    message = receive_one(sqs, url)
    assert json.loads(message["Body"]) == {"raise_error": 1}
    assert message["MessageAttributes"] == {
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "intentional failure"},
        "RequestID": {"DataType": "String", "StringValue": answer["ResponseMetadata"]["RequestId"]},
    }


def _error(call: Callable[[], Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_event_invoke_config_lifecycle_and_errors(server: ServerProcess, lam: Any) -> None:
    name = deploy(lam, SUCCEEDING)
    other = deploy(lam, SUCCEEDING)
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    missing = f"The function {arn}:$LATEST doesn't have an EventInvokeConfig"
    assert _error(lambda: lam.get_function_event_invoke_config(FunctionName=name)) == (
        "ResourceNotFoundException",
        missing,
        404,
    )
    assert _error(lambda: lam.put_function_event_invoke_config(FunctionName=name)) == (
        "InvalidParameterValueException",
        "You must specify at least one of error handling or destination setting.",
        400,
    )
    assert _error(
        lambda: lam.put_function_event_invoke_config(FunctionName="nope-x", MaximumRetryAttempts=1)
    ) == (
        "ResourceNotFoundException",
        "The function doesn't exist.",
        404,
    )
    self_dest = {"OnSuccess": {"Destination": arn}}
    assert _error(
        lambda: lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig=self_dest)
    )[1] == ("You can't specify the function as a destination for itself.")
    gone = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:doesnotexist"
    assert _error(
        lambda: lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnFailure": {"Destination": gone}}
        )
    )[1] == (f"The destination ARN {gone} is invalid.")
    no_queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:no-such-queue"
    assert _error(
        lambda: lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnFailure": {"Destination": no_queue}}
        )
    )[1] == (f"The destination ARN {no_queue} is invalid.")
    iam = f"arn:aws:iam:{REGION}:{ACCOUNT}:function:{name}"
    assert _error(
        lambda: lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": iam}}
        )
    )[1] == (
        f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={iam}), "
        "onFailure=null) is invalid."
    )
    assert _error(
        lambda: lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    ) == (
        "ResourceNotFoundException",
        missing,
        404,
    )

    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert put["FunctionArn"] == f"{arn}:$LATEST" and put["MaximumRetryAttempts"] == 0
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert "MaximumEventAgeInSeconds" not in put
    destination = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{other}"
    updated = lam.update_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnSuccess": {"Destination": destination}},
    )
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 60)
    assert updated["DestinationConfig"]["OnSuccess"] == {"Destination": destination}
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert {k: got[k] for k in updated if k != "ResponseMetadata"} == {
        k: updated[k] for k in updated if k != "ResponseMetadata"
    }
    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    assert "MaximumEventAgeInSeconds" not in replaced
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"{arn}:$LATEST"]
    assert _error(lambda: lam.list_function_event_invoke_configs(FunctionName="nope-x"))[1] == (
        "The function doesn't exist."
    )
    lam.delete_function_event_invoke_config(FunctionName=name)
    assert _error(lambda: lam.delete_function_event_invoke_config(FunctionName=name))[1] == missing
    assert lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"] == []
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.delete_function(FunctionName=name)
    lam.create_function(**create_kwargs(name, make_zip({"handler.py": SUCCEEDING})))
    assert _error(lambda: lam.get_function_event_invoke_config(FunctionName=name))[1] == missing
