"""lambdad's own HTTP/1.1 layer, spoken to over raw sockets: framing, keep-alive, pipelining, errors."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import create_kwargs
from tests.serverproc import ACCESS_KEY, SECRET_KEY, ServerProcess, make_zip

SLOW = make_zip(
    {"slow.py": "import time\ndef handler(event, context):\n    time.sleep(1.5)\n    return 'done'\n"}
)


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (``buf`` carries bytes read past it to the next call)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response: {bytes(buf)!r}"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    buf[:] = rest[length:]
    return status, headers, rest[:length]


def signed_invoke(server: ServerProcess, name: str, body: bytes = b"{}", **headers: str) -> bytes:
    """A complete signed Invoke request as raw bytes, HTTP/1.1, keep-alive."""
    url = f"{server.endpoint}/2015-03-31/functions/{name}/invocations"
    request = AWSRequest("POST", url, data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", "us-east-1").add_auth(request)
    lines = [f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_keep_alive_and_pipelined_requests_answer_in_order(
    lam: Any, server: ServerProcess, fn_name: str
) -> None:
    lam.create_function(**create_kwargs(fn_name, make_zip({"echo.py": "def handler(e, c):\n    return e\n"}),
                                        Handler="echo.handler"))  # fmt: skip
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 0.1})
    with connect(server) as sock:
        # three requests in one write: each is answered, in order, on the same connection
        sock.sendall(
            b"".join(signed_invoke(server, fn_name, json.dumps({"n": n}).encode()) for n in range(3))
        )
        buf = bytearray()
        answers = [read_response(sock, buf) for _ in range(3)]
        assert [json.loads(body) for _, _, body in answers] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert all(status == 200 for status, _, _ in answers)
        ids = {headers["x-amzn-requestid"] for _, headers, _ in answers}
        assert len(ids) == 3 and all(headers.get("date") for _, headers, _ in answers)
        # and the connection stays open for a fourth
        sock.sendall(signed_invoke(server, fn_name, b'{"n": 3}'))
        assert json.loads(read_response(sock, buf)[2]) == {"n": 3}


def test_connection_close_and_http_1_0(server: ServerProcess) -> None:
    for request in (
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.0\r\n\r\n",
    ):
        with connect(server) as sock:
            sock.sendall(request)
            status, headers, body = read_response(sock, bytearray())
            assert status == 200 and json.loads(body)["status"] == "ok"
            assert headers["connection"] == "close"
            assert sock.recv(1) == b""  # the server closed it


def test_head_has_headers_but_no_body(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
            data += sock.recv(65536)
        head, get = data.split(b"HTTP/1.1 200")[1:3]
        # the HEAD answer announces a length but carries no body: the GET answer follows at once
        assert b"content-length:" in head.lower() and head.endswith(b"\r\n\r\n")
        assert b'"status": "ok"' in get


def test_expect_100_continue_gets_an_interim_answer(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"{}")
        rest = bytearray(interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
        assert read_response(sock, rest)[0] == 200


def test_malformed_request_is_400_and_closed(server: ServerProcess, lam: Any) -> None:
    with connect(server) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert status == 400 and headers["connection"] == "close" and b"Malformed HTTP request" in body
        assert sock.recv(1) == b""
    assert lam.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200  # and the server serves on


def test_body_over_the_server_limit_is_413_without_buffering_it_all(server: ServerProcess) -> None:
    """Past 70,167,211 bytes the server stops keeping the body; App answers AWS's 413."""
    size = 70_167_211 + 1_000_000
    head = b"POST /2015-03-31/functions/x/code HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    with connect(server) as sock:
        sock.sendall(head)
        chunk = b"\0" * (1 << 20)
        sent = 0
        while sent < size:
            n = min(len(chunk), size - sent)
            sock.sendall(chunk[:n])
            sent += n
        status, headers, body = read_response(sock, bytearray())
    assert status == 413 and headers["x-amzn-errortype"].startswith("RequestEntityTooLargeException")


def test_sigterm_lets_an_invoke_in_flight_finish(new_server: Any, tmp_path: Path, fn_name: str) -> None:
    proc = new_server(tmp_path / "data")
    lam = proc.client("lambda")
    lam.create_function(**create_kwargs(fn_name, SLOW, Handler="slow.handler", Timeout=10))
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 0.1})
    result: dict[str, Any] = {}

    def invoke() -> None:
        client = boto3.client(
            "lambda", endpoint_url=proc.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip
        result["answer"] = client.invoke(FunctionName=fn_name)

    caller = threading.Thread(target=invoke)
    caller.start()
    time.sleep(0.7)  # the invoke is running inside its sandbox
    assert proc.stop(signal.SIGTERM) == 0
    caller.join(10)
    answer = result["answer"]
    assert answer["StatusCode"] == 200 and answer["Payload"].read() == b'"done"'
