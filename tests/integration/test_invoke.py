"""Invoke through the real server: runtimes, errors, limits, isolation, concurrency and logs."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import ACCESS_KEY, SECRET_KEY, ServerProcess, make_zip

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")


def deploy(lam: Any, source: str, **overrides: Any) -> str:
    name = f"inv-{uuid.uuid4().hex[:10]}"
    files = {"handler.py": source} if isinstance(source, str) else source
    lam.create_function(**create_kwargs(name, make_zip(files), **overrides))
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def call(lam: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(
        FunctionName=name, Payload=json.dumps(payload if payload is not None else {}), **kwargs
    )
    raw = response["Payload"].read()
    return response, json.loads(raw) if raw else None


def log_of(response: dict[str, Any]) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def test_python_handler_context_and_warm_reuse(lam: Any) -> None:
    name = deploy(
        lam,
        "import os\nCOUNT = 0\n"
        "def handler(event, context):\n"
        "    global COUNT\n    COUNT += 1\n"
        "    print('seen', event)\n"
        "    return {'event': event, 'count': COUNT, 'request_id': context.aws_request_id,\n"
        "            'name': context.function_name, 'version': context.function_version,\n"
        "            'arn': context.invoked_function_arn, 'memory': context.memory_limit_in_mb,\n"
        "            'group': context.log_group_name, 'stream': context.log_stream_name,\n"
        "            'remaining': context.get_remaining_time_in_millis(),\n"
        "            'env': {k: v for k, v in os.environ.items()}}\n",
        Timeout=7,
        Environment={"Variables": {"MY_VAR": "mine"}},
    )
    first, body = call(lam, name, {"a": 1}, LogType="Tail")
    assert first["StatusCode"] == 200 and "FunctionError" not in first
    assert first["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"a": 1} and body["count"] == 1
    assert body["request_id"] == first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert (body["name"], body["version"], body["memory"]) == (name, "$LATEST", "128")
    assert body["arn"].endswith(f":function:{name}")
    assert body["group"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["stream"])
    assert 5000 < body["remaining"] <= 7000
    env = body["env"]
    assert env["MY_VAR"] == "mine" and env["AWS_LAMBDA_FUNCTION_NAME"] == name
    for key in (
        "_HANDLER",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "TZ",
        "PATH",
    ):
        assert key in env, key
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert not any(k.startswith("LAMBDAD_") for k in env), "the server's environment leaked"
    assert "PYTEST_CURRENT_TEST" not in env
    tail = log_of(first)
    rid = body["request_id"]
    assert f"START RequestId: {rid} Version: $LATEST" in tail
    assert "seen {'a': 1}" in tail
    assert re.search(
        rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
        r"Max Memory Used: \d+ MB\tInit Duration: [\d.]+ ms",
        tail,
    ), tail
    second, body2 = call(lam, name, {"a": 2}, LogType="Tail")
    assert body2["count"] == 2, "a warm environment keeps its globals"
    assert body2["stream"] == body["stream"]
    assert "Init Duration" not in log_of(second)


def test_trace_id_variable_changes_every_invoke_for_code_and_children(lam: Any) -> None:
    """_X_AMZN_TRACE_ID is new on every invoke, in os.environ and in processes the handler starts,
    also after the agent moves it out of setenv() (TraceIdVariable.ADOPT_AFTER invokes)."""
    name = deploy(
        lam,
        "import os, subprocess\n"
        "def handler(event, context):\n"
        "    child = subprocess.run(['/usr/bin/printenv', '_X_AMZN_TRACE_ID'], capture_output=True, text=True)\n"
        "    own = os.environ.get('_X_AMZN_TRACE_ID')\n"
        "    if event.get('set'):  # the function's own value must not stick to the next invoke\n"
        "        os.environ['_X_AMZN_TRACE_ID'] = 'set-by-function'\n"
        "    return [own, child.stdout.strip()]\n",
    )
    seen = []
    for i in range(80):
        own, child = call(lam, name, {"set": i == 70})[1]
        assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", own), own
        assert child == own  # the C environment, which children inherit, says the same
        seen.append(own)
    assert len(set(seen)) == 80


def test_unhandled_error_shape(lam: Any) -> None:
    name = deploy(lam, "def handler(event, context):\n    raise ValueError('Handler fails')\n")
    response, body = call(lam, name)
    assert response["FunctionError"] == "Unhandled" and response["StatusCode"] == 200
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "Handler fails"
    assert body["requestId"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert body["stackTrace"] and 'File "/var/task/handler.py", line 2, in handler' in body["stackTrace"][0]


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"handler.py": "x = 1\n"},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing'",
        ),
        (
            {"handler.py": "x = 1\n"},
            "handler.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'handler'",
        ),
        (
            {"handler.py": "def handler(:\n"},
            "handler.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'handler'",
        ),
    ],
)
def test_init_errors(lam: Any, files: dict[str, str], handler: str, error_type: str, message: str) -> None:
    name = deploy(lam, files, Handler=handler)
    response, body = call(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type
    assert message in body["errorMessage"]


def test_timeout_restarts_the_runtime(lam: Any) -> None:
    name = deploy(
        lam,
        "import time\nSTARTED = time.time()\n"
        "def handler(event, context):\n"
        "    if event.get('sleep'):\n        time.sleep(event['sleep'])\n"
        "    return STARTED\n",
        Timeout=1,
    )
    _, before = call(lam, name)
    response, body = call(lam, name, {"sleep": 5}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(
        r"RequestId: [0-9a-f-]{36} Error: Task timed out after 1\.00 seconds", body["errorMessage"]
    )
    assert "Task timed out after 1.00 seconds" in log_of(response)
    _, after = call(lam, name)
    assert after != before, "a new runtime started after the timeout"


def test_a_later_invoke_gets_its_own_whole_timeout(lam: Any) -> None:
    """An environment keeps one deadline timer and moves it on only when it fires: here it fires at
    the first invoke's deadline, halfway through the second one, which must run its whole second."""
    name = deploy(
        lam,
        "import time\ndef handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n    return context.get_remaining_time_in_millis()\n",
        Timeout=1,
    )
    call(lam, name)  # arms the timer for one second from now
    time.sleep(0.5)
    response, body = call(lam, name, {"sleep": 0.8}, LogType="Tail")
    assert "FunctionError" not in response, body
    assert 0 < body < 300, "the handler saw its own deadline"
    response, body = call(lam, name, {"sleep": 5}, LogType="Tail")
    assert body["errorType"] == "Sandbox.Timedout"
    duration = float(re.search(r"\tDuration: ([\d.]+) ms", log_of(response)).group(1))  # type: ignore[union-attr]
    assert duration >= 1000, f"timed out after {duration} ms, before its own deadline"


def test_out_of_memory_is_killed(lam: Any) -> None:
    name = deploy(
        lam,
        "def handler(event, context):\n    blocks = []\n"
        "    while True:\n        blocks.append(bytearray(16 * 1024 * 1024))\n",
        MemorySize=128,
        Timeout=20,
    )
    response, body = call(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")


def test_tmp_is_sized_and_not_charged_to_memory(lam: Any) -> None:
    name = deploy(
        lam,
        "import errno\n"
        "def handler(event, context):\n"
        "    written = 0\n"
        "    chunk = b'x' * (1 << 20)\n"
        "    try:\n"
        "        with open('/tmp/fill', 'wb') as out:\n"
        "            for _ in range(700):\n"
        "                out.write(chunk); written += 1\n"
        "                out.flush()\n"
        "    except OSError as exc:\n"
        "        return {'errno': exc.errno == errno.ENOSPC, 'mb': written}\n"
        "    return {'errno': False, 'mb': written}\n",
        MemorySize=128,
        Timeout=60,
    )
    response, body = call(lam, name)
    assert "FunctionError" not in response, body
    assert body["errno"] is True and 400 <= body["mb"] <= 512


def test_isolation_probes(server: ServerProcess, lam: Any) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    name = deploy(
        lam,
        "import os, socket, json\n"
        "def probe(fn):\n"
        "    try:\n        return fn()\n    except Exception as exc:\n        return type(exc).__name__\n"
        "def connect(port):\n"
        "    s = socket.socket(); s.settimeout(1)\n"
        "    try:\n        s.connect(('127.0.0.1', port)); return 'connected'\n    finally:\n        s.close()\n"
        "def handler(event, context):\n"
        "    return {\n"
        "        'pids': [p for p in os.listdir('/proc') if p.isdigit()],\n"
        "        'uid': os.getuid(),\n"
        "        'root': probe(lambda: os.listdir('/root')),\n"
        "        'home': probe(lambda: os.listdir('/home')),\n"
        "        'data': probe(lambda: os.listdir(event['data'])),\n"
        "        'task_write': probe(lambda: open('/var/task/x', 'w').write('x')),\n"
        "        'server_port': probe(lambda: connect(event['server_port'])),\n"
        "        'host_port': probe(lambda: connect(event['host_port'])),\n"
        "        'hostname': socket.gethostname(),\n"
        "        'ifaces': os.listdir('/sys/class/net') if os.path.exists('/sys/class/net') else [],\n"
        "    }\n",
    )
    _, body = call(lam, name, {"data": str(server.data_dir), "server_port": server.port, "host_port": port})
    listener.close()
    assert len(body["pids"]) <= 3, body["pids"]
    assert body["uid"] != 0
    assert body["root"] in ("FileNotFoundError", "PermissionError", [])
    assert body["home"] in ("FileNotFoundError", "PermissionError", [])
    assert body["data"] == "FileNotFoundError"
    assert body["task_write"] in ("OSError", "PermissionError")
    assert body["server_port"] != "connected" and body["host_port"] != "connected"


def test_parallel_invocations_run_concurrently(lam: Any) -> None:
    name = deploy(
        lam, "import time\ndef handler(event, context):\n    time.sleep(1)\n    return event\n", Timeout=10
    )
    call(lam, name, {"warm": True})
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: call(lam, name, {"i": i})[1], range(10)))
    elapsed = time.monotonic() - started
    assert results == [{"i": i} for i in range(10)]
    assert elapsed < 4.0, f"10 parallel 1 s invocations took {elapsed:.1f} s"


def test_reserved_concurrency_throttles(lam: Any) -> None:
    name = deploy(
        lam,
        "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 1\n",
        Timeout=10,
    )
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as exc:
        call(lam, name)
    assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert exc.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    errors: list[str] = []
    blocker = threading.Thread(target=lambda: call(lam, name, {"sleep": 2}))
    blocker.start()
    time.sleep(0.8)
    try:
        call(lam, name)
    except ClientError as error:
        errors.append(error.response["Error"]["Code"])
    blocker.join()
    assert errors == ["TooManyRequestsException"]
    assert call(lam, name)[1] == 1


def test_invocation_types_and_payload_errors(lam: Any) -> None:
    name = deploy(lam, "def handler(event, context):\n    print('async', event)\n    return event\n")
    dry = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 1}')
    assert event["StatusCode"] == 202
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b"not json")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="does-not-exist-fn")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_response_too_large(lam: Any) -> None:
    name = deploy(
        lam, "def handler(event, context):\n    return 'x' * (6 * 1024 * 1024 + 100)\n", MemorySize=512
    )
    response, body = call(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_node_handler(lam: Any) -> None:
    name = deploy(
        lam,
        {
            "index.mjs": "let n = 0;\nexport const handler = async (event, context) => {\n"
            "  n += 1; console.log('node says', JSON.stringify(event));\n"
            "  return {n, event, rid: context.awsRequestId, mem: context.memoryLimitInMB};\n};\n"
        },
        Runtime="nodejs20.x",
        Handler="index.handler",
    )
    response, body = call(lam, name, {"x": 1}, LogType="Tail")
    assert "FunctionError" not in response, body
    assert body["event"] == {"x": 1} and body["n"] == 1 and body["mem"] == "128"
    assert body["rid"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert 'INFO\tnode says {"x":1}' in log_of(response)
    assert call(lam, name)[1]["n"] == 2


def test_node_trace_id_variable_is_fresh_seen_by_children_and_does_not_leak(lam: Any) -> None:
    """process.env._X_AMZN_TRACE_ID is new on every invoke and reaches child processes, and
    setting it costs no memory for good (setenv() keeps every value; the bootstrap keeps this one
    variable in JavaScript). Another variable, set the same way, is the yardstick for the leak."""
    name = deploy(
        lam,
        {
            "index.mjs": "import { execFileSync } from 'node:child_process';\n"
            "const grow = (key) => {\n"
            "  const before = process.memoryUsage().rss;\n"
            "  for (let i = 0; i < 200000; i++) process.env[key] = `Root=1-${i}-000000000000000000000000;Sampled=0`;\n"
            "  return (process.memoryUsage().rss - before) / 1048576;\n"
            "};\n"
            "export const handler = async (event) => {\n"
            "  if (event.grow) return {trace: grow('_X_AMZN_TRACE_ID'), other: grow('SOME_OTHER_VAR')};\n"
            "  const own = process.env._X_AMZN_TRACE_ID;\n"
            "  const child = execFileSync('/usr/bin/printenv', ['_X_AMZN_TRACE_ID']).toString().trim();\n"
            "  return [own, child, Object.keys(process.env).includes('_X_AMZN_TRACE_ID')];\n"
            "};\n"
        },
        Runtime="nodejs20.x",
        Handler="index.handler",
        MemorySize=512,
        Timeout=60,
    )
    seen = set()
    for _ in range(5):
        own, child, listed = call(lam, name)[1]
        assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", own), own
        assert child == own and listed
        seen.add(own)
    assert len(seen) == 5
    growth = call(lam, name, {"grow": True})[1]
    assert growth["other"] > 15, growth  # setenv() kept 200,000 values: the yardstick works
    assert growth["trace"] < growth["other"] / 2, growth
    own, child, _ = call(lam, name)[1]
    assert child == own and own.startswith("Root=1-") and own not in seen


def test_node_large_unicode_event_and_response_round_trip(lam: Any) -> None:
    """Megabytes each way through the Node bootstrap's Runtime API client: an event that arrives in
    many reads, characters of several UTF-8 bytes split across them, several invokes in a row."""
    name = deploy(
        lam,
        {
            "index.mjs": "export const handler = async (event) =>\n"
            "  ({n: event.text.length, text: event.text + 'é'.repeat(event.extra)});\n"
        },
        Runtime="nodejs20.x",
        Handler="index.handler",
        MemorySize=512,
    )
    text = ("añ€😀b" * 60_000)[:200_000]  # about 600 KB of UTF-8 in the event
    for extra in (0, 1_000_000, 7):  # the middle answer is 2.6 MB
        response, body = call(lam, name, {"text": text, "extra": extra})
        assert "FunctionError" not in response, body
        assert body["n"] == len(text.encode("utf-16-le")) // 2  # JavaScript counts UTF-16 units
        assert body["text"] == text + "é" * extra


def test_node_error(lam: Any) -> None:
    name = deploy(
        lam,
        {"index.js": "exports.handler = async () => { throw new TypeError('bad thing'); };\n"},
        Runtime="nodejs20.x",
        Handler="index.handler",
    )
    response, body = call(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "bad thing"


BOOTSTRAP = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  EVENT=$(/usr/bin/python3 -c "
import sys, urllib.request
r = urllib.request.urlopen('$API/invocation/next')
open('$HEADERS', 'w').write(r.headers['Lambda-Runtime-Aws-Request-Id'])
sys.stdout.write(r.read().decode())
")
  ID=$(cat "$HEADERS")
  /usr/bin/python3 -c "
import urllib.request
body = ('{\\"custom\\": true, \\"event\\": ' + '''$EVENT''' + '}').encode()
urllib.request.urlopen(urllib.request.Request('$API/invocation/$ID/response', data=body, method='POST'))
"
done
"""


def test_custom_runtime_bootstrap(lam: Any) -> None:
    name = f"inv-{uuid.uuid4().hex[:10]}"
    package = make_zip({"bootstrap": BOOTSTRAP}, modes={"bootstrap": 0o755})
    lam.create_function(**create_kwargs(name, package, Runtime="provided.al2023", Handler="function.handler"))
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    response, body = call(lam, name, {"k": "v"})
    assert "FunctionError" not in response, body
    assert body == {"custom": True, "event": {"k": "v"}}


def test_logs_reach_the_logs_api_and_cli(server: ServerProcess, lam: Any) -> None:
    name = deploy(lam, "def handler(event, context):\n    print('marker-line', event['n'])\n    return 1\n")
    for n in range(3):
        call(lam, name, {"n": n})
    logs = server.client("logs")
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 10
    messages: list[str] = []
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []  # the group appears with the first batch the log store writes
        messages = [e["message"] for e in events]
        if sum("REPORT RequestId" in m for m in messages) >= 3:
            break
        time.sleep(0.2)
    assert sum(m.startswith("START RequestId") for m in messages) == 3
    assert [m for m in messages if m.startswith("marker-line")] == [f"marker-line {n}\n" for n in range(3)]
    # The cold invocation's lines are made by the server, the warm ones' by the log writer: the same.
    for i in [i for i, m in enumerate(messages) if m.startswith("START RequestId")]:
        rid = messages[i].split()[2]
        assert messages[i] == f"START RequestId: {rid} Version: $LATEST\n"
        assert messages[i + 1].startswith("marker-line")
        assert messages[i + 2] == f"END RequestId: {rid}\n"
        assert re.fullmatch(
            rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
            r"Max Memory Used: \d+ MB\t(Init Duration: [\d.]+ ms\t)?\n",
            messages[i + 3],
        ), messages[i + 3]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 1 and "[$LATEST]" in streams[0]["logStreamName"]
    out = server.aws_cli(
        "logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "marker-line"
    )
    assert out.stdout.count("marker-line") == 3


def test_no_process_left_after_delete(lam: Any) -> None:
    name = deploy(
        lam,
        "import subprocess\ndef handler(event, context):\n"
        "    subprocess.Popen(['/bin/sleep', '300'])\n    return 'ok'\n",
    )
    marker = f"{name}"
    call(lam, name)
    assert _sandbox_processes() > 0
    lam.delete_function(FunctionName=marker)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _sleepers():
        time.sleep(0.1)
    assert _sleepers() == 0


def _sandbox_processes() -> int:
    out = subprocess.run(["pgrep", "-f", "_lambdad_runtime"], capture_output=True, text=True).stdout
    return len(out.split())


def _sleepers() -> int:
    out = subprocess.run(["pgrep", "-f", "^/bin/sleep 300$"], capture_output=True, text=True).stdout
    return len(out.split())


def test_crash_and_fork_bomb_leave_server_healthy(server: ServerProcess, lam: Any) -> None:
    crash = deploy(lam, "import os\ndef handler(event, context):\n    os._exit(3)\n")
    response, body = call(lam, crash)
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    bomb = deploy(
        lam,
        "import os, time\ndef handler(event, context):\n"
        "    n = 0\n    try:\n        while True:\n            if os.fork() == 0:\n                time.sleep(30); os._exit(0)\n"
        "            n += 1\n    except OSError:\n        return n\n",
        Timeout=20,
        MemorySize=1769,  # a full vCPU: at 128 MB's CPU share, 1024 forks outlast the timeout
    )
    _, forked = call(lam, bomb)
    assert isinstance(forked, int) and forked < 1024
    echo = deploy(lam, "def handler(event, context):\n    return event\n")
    assert call(lam, echo, {"still": "fine"})[1] == {"still": "fine"}
    lam.delete_function(FunctionName=bomb)


def test_environments_that_end_leave_no_descriptor_behind(new_server: Any, tmp_path: Any) -> None:
    """Every environment holds pipes in the server (two for frames, one for output) and a crash or
    a timeout destroys it: after twenty of each the server holds no more descriptors than after one."""
    server = new_server(tmp_path / "fds", args=["--prespawn", "0"])
    lam = server.client("lambda")
    crash = deploy(lam, "import os\ndef handler(event, context):\n    os._exit(3)\n")
    slow = deploy(lam, "import time\ndef handler(event, context):\n    time.sleep(5)\n", Timeout=1)

    def end_both(times: int) -> None:
        for _ in range(times):
            assert call(lam, crash)[0]["FunctionError"] == "Unhandled"
            assert call(lam, slow)[1]["errorType"] == "Sandbox.Timedout"

    def settled_fds() -> int:
        """The server's open descriptors once destroyed sandboxes are gone (destroy runs after the answer)."""
        deadline = time.monotonic() + 10
        while _runtime_processes_of(server) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        return len(os.listdir(f"/proc/{server.proc.pid}/fd"))

    end_both(1)
    before = settled_fds()
    end_both(20)
    after = settled_fds()
    assert after <= before + 2, f"{after - before} descriptors more after 40 ended environments"


def test_idle_environments_are_reaped(new_server: Any, tmp_path: Any) -> None:
    server = new_server(tmp_path / "reap", args=["--idle-timeout", "1", "--prespawn", "0"])
    lam = server.client("lambda")
    name = deploy(lam, "def handler(event, context):\n    return 'awake'\n")
    assert call(lam, name)[1] == "awake"
    assert _runtime_processes_of(server) > 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _runtime_processes_of(server) > 0:
        time.sleep(0.2)
    assert _runtime_processes_of(server) == 0, "the idle environment was not reaped"
    response, body = call(lam, name, LogType="Tail")
    assert body == "awake" and "Init Duration" in log_of(response), "a reaped function starts cold again"


def _runtime_processes_of(server: ServerProcess) -> int:
    """bwrap processes of this server's sandboxes: their command lines name its runtime dir."""
    from lambdad.config import Settings

    root = Settings(data_dir=server.data_dir).sandbox_root()
    out = subprocess.run(["pgrep", "-f", f"bwrap .*{root}/"], capture_output=True, text=True)
    return len(out.stdout.split())


def test_megabytes_of_output_are_capped_and_logged(server: ServerProcess, lam: Any) -> None:
    name = deploy(
        lam,
        "import sys\ndef handler(event, context):\n"
        "    line = 'y' * 1023 + '\\n'\n"
        "    for _ in range(20 * 1024):\n        sys.stdout.write(line)\n"
        "    return 'done'\n",
        Timeout=30,
        MemorySize=512,
    )
    response, body = call(lam, name, LogType="Tail")
    assert body == "done" and "FunctionError" not in response
    assert "bytes of output dropped" in log_of(response), "20 MB of output is capped, and says so"
    assert len(base64.b64decode(response["LogResult"])) <= 4096
    assert call(lam, name)[1] == "done", "the environment keeps working"


def test_output_written_just_before_returning_is_in_the_invocations_log(lam: Any) -> None:
    """The host reads no more of the output pipe once the result frame is in: output the runtime
    wrote before that frame must already be read, however full the pipe was. Each invoke writes
    more than the pipe holds, then its marker with a raw write(2) as its last act."""
    name = deploy(
        lam,
        "import os, sys\ndef handler(event, context):\n"
        "    sys.stdout.write('z' * 99 + '\\n' * 1 + ('x' * 1023 + '\\n') * 100)\n    sys.stdout.flush()\n"
        "    os.write(1, f\"marker {event['n']}\\n\".encode())\n    return event['n']\n",
        Timeout=10,
    )
    for n in range(60):
        response, body = call(lam, name, {"n": n}, LogType="Tail")
        assert body == n
        assert f"marker {n}\n" in log_of(response), f"invoke {n}: its last line is missing from its log"


def test_aws_logs_tail_follow(server: ServerProcess, lam: Any, tmp_path: Any) -> None:
    """`aws logs tail --follow` (AWS CLI v2's command, on v1 through its port as a plugin)."""
    name = deploy(lam, "def handler(event, context):\n    print('tail-marker', event['n'])\n    return 1\n")
    call(lam, name, {"n": 1})
    config = tmp_path / "aws-config"
    config.write_text("[plugins]\nlogs-tail = awscli_plugin_logs_tail\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    aws = [os.path.join(os.path.dirname(sys.executable), "aws"), "--endpoint-url", server.endpoint]
    follower = subprocess.Popen(
        [*aws, "logs", "tail", f"/aws/lambda/{name}", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        time.sleep(2)
        call(lam, name, {"n": 2})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("tail-marker 2" in line for line in lines):
            time.sleep(0.2)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        reader.join(timeout=10)
        follower.stdout.close()  # type: ignore[union-attr]
    seen = "".join(lines)
    assert "tail-marker 1" in seen and "tail-marker 2" in seen, seen
    assert "[$LATEST]" in seen and "REPORT RequestId" in seen


def test_functions_cannot_create_namespaces(lam: Any) -> None:
    """No user namespace of its own (and with it no capabilities to create the others)."""
    name = deploy(
        lam,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def handler(event, context):\n"
        "    results = {}\n"
        "    for label, flag in (('user', 0x10000000), ('net', 0x40000000), ('mount', 0x00020000)):\n"
        "        results[label] = libc.unshare(flag) == 0\n"
        "    return results\n",
    )
    assert call(lam, name)[1] == {"user": False, "net": False, "mount": False}


def test_seccomp_refuses_kernel_surfaces_functions_do_not_need(lam: Any) -> None:
    """keyrings, eBPF, io_uring: EPERM from the sandbox's seccomp filter (x86_64)."""
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the seccomp table is x86_64's")
    name = deploy(
        lam,
        "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "def call(*args):\n"
        "    ctypes.set_errno(0)\n"
        "    result = libc.syscall(*args)\n"
        "    return 'EPERM' if result == -1 and ctypes.get_errno() == errno.EPERM else result\n"
        "def handler(event, context):\n"
        "    params = ctypes.create_string_buffer(120)\n"
        "    return {\n"
        "        'keyctl': call(250, 0, -3, 0),\n"
        "        'bpf': call(321, 0, 0, 0),\n"
        "        'io_uring_setup': call(425, 1, params),\n"
        "        'getpid': call(39) > 0,\n"
        "    }\n",
    )
    assert call(lam, name)[1] == {
        "keyctl": "EPERM",
        "bpf": "EPERM",
        "io_uring_setup": "EPERM",
        "getpid": True,
    }


def test_node_commonjs_callback_handler(lam: Any) -> None:
    name = deploy(
        lam,
        {
            "app/handler.js": "exports.main = (event, context, callback) => {\n"
            "  setTimeout(() => callback(null, {cjs: true, got: event, fn: context.functionName}), 10);\n"
            "};\n"
        },
        Runtime="nodejs20.x",
        Handler="app/handler.main",
    )
    response, body = call(lam, name, {"k": 1})
    assert "FunctionError" not in response, body
    assert body == {"cjs": True, "got": {"k": 1}, "fn": name}


def test_process_backend_runs_and_reuses_environments(new_server: Any) -> None:
    """``--sandbox process`` (hosts without namespaces): functions run, warm, with AWS's results."""
    server = new_server(args=["--sandbox", "process"])
    assert "Use it for development only" in server.log()  # and says so loudly
    plain = server.client("lambda")
    name = deploy(plain, "calls = 0\ndef handler(event, context):\n    global calls\n    calls += 1\n"
                         "    return {'calls': calls, 'echo': event, 'name': context.function_name}\n")  # fmt: skip
    first, body = call(plain, name, {"x": 1})
    assert "FunctionError" not in first, body
    assert body == {"calls": 1, "echo": {"x": 1}, "name": name}
    _, again = call(plain, name, {"x": 2})
    assert again == {"calls": 2, "echo": {"x": 2}, "name": name}
    failing = deploy(plain, "def handler(event, context):\n    raise ValueError('nope')\n")
    answer, error = call(plain, failing)
    assert answer["FunctionError"] == "Unhandled" and error["errorType"] == "ValueError"
