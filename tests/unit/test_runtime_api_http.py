"""The agent's Runtime API server with its lean header parsing and one-write replies, driven by
http.client over a real socket, and its frames read from a real socket pair."""

from __future__ import annotations

import http.client
import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from lambdad.runtime import agent
from lambdad.runtime import protocol as P


@pytest.fixture
def runtime_api() -> Iterator[tuple[agent.RuntimeApi, socket.socket, int]]:
    host_end, agent_end = socket.socketpair()
    fd = agent_end.detach()  # the agent reads and writes frames through one socket here
    api = agent.RuntimeApi(agent.Channel(fd, fd))
    original = http.client.parse_headers
    http.client.parse_headers = agent._parse_headers  # type: ignore[assignment]  # as run_api does
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), agent.make_http_handler(api))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield api, host_end, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        http.client.parse_headers = original  # type: ignore[assignment]
        host_end.close()


def test_next_response_and_errors_over_one_kept_alive_connection(
    runtime_api: tuple[agent.RuntimeApi, socket.socket, int],
) -> None:
    api, host_end, port = runtime_api
    frames = P.BlockingReader(host_end.recv)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    header = {
        "request_id": "r-1",
        "deadline_ms": "1700000000000",
        "invoked_function_arn": "arn:x",
        "trace_id": "T",
    }
    api.invocations.put((header, b'{"in":1}'))
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    got = conn.getresponse()
    assert got.status == 200 and got.read() == b'{"in":1}'
    assert got.getheader("Lambda-Runtime-Aws-Request-Id") == "r-1"
    assert got.getheader("lambda-runtime-deadline-ms") == "1700000000000"
    assert frames.recv()[0] == P.READY  # the first GET tells the host the runtime is ready
    conn.request("POST", "/2018-06-01/runtime/invocation/r-1/response", body=b'{"out":2}',
                 headers={"X-Mixed-Case": "v", "content-type": "application/json"})  # fmt: skip
    done = conn.getresponse()
    assert (done.status, done.read()) == (202, b'{"status":"OK"}')
    assert frames.recv() == (P.RESULT, {"request_id": "r-1"}, b'{"out":2}')
    conn.request("POST", "/2018-06-01/runtime/invocation/not-current/response", body=b"{}")
    stale = conn.getresponse()
    assert stale.status == 400 and json.loads(stale.read())["errorType"] == "InvalidRequestID"
    conn.request("GET", "/2018-06-01/runtime/nowhere", headers={"Connection": "close"})
    missing = conn.getresponse()
    assert missing.status == 404 and missing.getheader("Connection") == "close"
    assert json.loads(missing.read())["errorType"] == "InvalidRequest"
    conn.close()


def test_header_parsing_is_case_insensitive_and_bounded() -> None:
    headers = agent._parse_headers(io.BytesIO(b"Content-Length: 12\r\nX-A:  spaced value \r\n\r\nbody"))
    assert headers.get("content-length") == "12" and headers["CONTENT-LENGTH"] == "12"
    assert headers.get("x-a") == "spaced value" and headers.get("absent", "d") == "d"
    with pytest.raises(http.client.HTTPException):
        agent._parse_headers(io.BytesIO(b"X: y\r\n" * (agent.MAX_HEADER_LINES + 1) + b"\r\n"))
    with pytest.raises(http.client.LineTooLong):
        agent._parse_headers(io.BytesIO(b"X: " + b"y" * 70000 + b"\r\n\r\n"))
