import asyncio
import functools
import json
import os
import socket
import threading

import pytest
import uvloop

from lambdad.environments.channel import FrameChannel
from lambdad.runtime import protocol as P


def test_round_trip() -> None:
    data = P.encode(P.ERROR, {"request_id": "r", "errorType": "E", "n": 5}, b"\x00payload")
    length = P.frame_length(data[:4])
    assert length == len(data) - 4
    assert P.decode(data[4:]) == (P.ERROR, {"request_id": "r", "errorType": "E", "n": 5}, b"\x00payload")


ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


def test_invoke_header_is_lines() -> None:
    data = P.encode_invoke("r-1", 1700000000123, ARN, "Root=1-a;Sampled=1", None, b"{}")
    assert b"r-1\n1700000000123\n" + ARN.encode() + b"\nRoot=1-a;Sampled=1{}" in data
    assert P.decode(data[4:]) == (P.INVOKE, {"request_id": "r-1", "deadline_ms": "1700000000123",
                                             "invoked_function_arn": ARN, "trace_id": "Root=1-a;Sampled=1"}, b"{}")  # fmt: skip
    no_trace = P.decode(P.encode_invoke("r", 5, ARN, None, None, b"")[4:])[1]
    assert no_trace["trace_id"] is None and "client_context" not in no_trace


def test_invoke_header_extra_keys_and_line_breaks() -> None:
    context = '{"custom":\n{"a":"b"}}'  # JSON text may hold line breaks: it rides in the JSON line
    data = P.encode_invoke("r", 5, ARN, "x\ny", {"client_context": context, "cognito_identity": None}, b"p")
    kind, header, body = P.decode(data[4:])
    assert (kind, body) == (P.INVOKE, b"p")
    assert header == {"request_id": "r", "deadline_ms": "5", "invoked_function_arn": ARN, "trace_id": "x\ny",
                      "client_context": context, "cognito_identity": None}  # fmt: skip
    assert P.decode(P.encode(P.INVOKE, header, b"p")[4:])[1] == header  # the generic encoder agrees


def test_bad_invoke_header_rejected() -> None:
    for raw in (b"r\n5", b"r\n5\narn\nt\n[1]", b"r\n5\narn\nt\n{bad", b"\xff\n5\na\nt"):
        with pytest.raises(P.FrameError):
            P.decode(bytes([P.INVOKE]) + len(raw).to_bytes(4, "big") + raw)


def test_empty_header_and_body() -> None:
    data = P.encode(P.INIT)
    assert data == b"\x00\x00\x00\x05" + bytes([P.INIT]) + b"\x00\x00\x00\x00", "an empty header is no bytes"
    assert P.decode(data[4:]) == (P.INIT, {}, b"")
    assert P.decode(P.encode_raw(P.RESULT, b"{}", b"1")[4:]) == (P.RESULT, {}, b"1")  # spelled out, too


@pytest.mark.parametrize(
    "text",
    ['{"a":1}', "{}", "[1, 2]", '"s"', "3", "null", "NaN", " {} ", "{}\n", "\t[1]", '{"a":1}{"b":2}',
     "", " ", "{", '{"a":}', "[1,]", '"\\ud800"', "nul", "1 2", '{"a":"\x01"}'],
)  # fmt: skip
def test_json_loads_agrees_with_json_module(text: str) -> None:
    """The scanner-only path answers exactly what json.loads answers, errors included."""
    try:
        expected: object = json.loads(text)
    except ValueError as e:
        with pytest.raises(ValueError) as got:
            P.json_loads(text.encode())
        assert str(got.value) == str(e)
        return
    assert repr(P.json_loads(text.encode())) == repr(expected)


def test_bad_length_rejected() -> None:
    with pytest.raises(P.FrameError):
        P.frame_length((P.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(P.FrameError):
        P.frame_length((2).to_bytes(4, "big"))


def test_header_must_be_object() -> None:
    raw = b"[1]"
    rest = bytes([P.RESULT]) + len(raw).to_bytes(4, "big") + raw
    with pytest.raises(P.FrameError):
        P.decode(rest)


def test_header_longer_than_frame() -> None:
    rest = bytes([P.RESULT]) + (100).to_bytes(4, "big") + b"{}"
    with pytest.raises(P.FrameError):
        P.decode(rest)


def test_blocking_socket_frames() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(
            P.encode(P.READY, {"init_duration_ms": 1.5}) + P.encode(P.RESULT, {"request_id": "x"}, b"42")
        )
        reader = P.BlockingReader(b.recv)  # both frames arrive in one read: the second is kept for later
        assert reader.recv() == (P.READY, {"init_duration_ms": 1.5}, b"")
        assert reader.recv() == (P.RESULT, {"request_id": "x"}, b"42")
        big = bytes(range(256)) * 5000  # larger than one read: assembled from several
        sender = threading.Thread(target=a.sendall, args=(P.encode(P.RESULT, {"request_id": "y"}, big),))
        sender.start()  # more than the socket buffer holds: sent while the reader reads
        assert reader.recv() == (P.RESULT, {"request_id": "y"}, big)
        sender.join()
        a.shutdown(socket.SHUT_WR)
        assert reader.recv() is None


def test_blocking_one_frame_per_read_and_split_prefix() -> None:
    a, b = socket.socketpair()
    with a, b:
        reader = P.BlockingReader(b.recv)
        a.sendall(P.encode_invoke("r", 5, "arn", None, None, b"x"))  # exactly one frame in the read
        assert reader.recv() == (P.INVOKE, {"request_id": "r", "deadline_ms": "5",
                                            "invoked_function_arn": "arn", "trace_id": None}, b"x")  # fmt: skip
        frame = P.encode(P.RESULT, {"k": "v"}, b"body")
        a.sendall(frame[:2])  # the length prefix itself arrives in two reads
        sender = threading.Timer(0.05, a.sendall, args=(frame[2:],))
        sender.start()
        assert reader.recv() == (P.RESULT, {"k": "v"}, b"body")
        sender.join()


def test_blocking_truncated_frame() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(P.encode(P.RESULT, {}, b"abcdef")[:-2])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(P.FrameError):
            P.BlockingReader(b.recv).recv()


class _AgentEnds:
    """The agent's ends of the two control pipes, blocking, as the agent holds them; ``host`` is the
    (read, write) pair that FrameChannel.connect takes over."""

    def __init__(self) -> None:
        self.read_fd, host_write = os.pipe()
        host_read, self.write_fd = os.pipe()
        self.host = (host_read, host_write)
        self.reader = P.BlockingReader(functools.partial(os.read, self.read_fd))

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def close_reading(self) -> None:
        os.close(self.read_fd)
        self.read_fd = -1

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_frame_channel_over_pipes() -> None:
    """The host's ends under uvloop, as the server runs them: whole frames, frames split across
    reads, several frames in one read, a waiting reader, the end of the stream."""

    async def run() -> None:
        agent = _AgentEnds()
        channel = await FrameChannel.connect(*agent.host)
        big = bytes(range(256)) * 5000  # several reads
        agent.sendall(P.encode(P.READY, {"init_duration_ms": 1.5}))
        assert await channel.read() == (P.READY, {"init_duration_ms": 1.5}, b"")
        waiting = asyncio.ensure_future(channel.read())  # waits before the bytes arrive
        await asyncio.sleep(0.01)
        sender = threading.Thread(target=agent.sendall, args=(P.encode(P.RESULT, {"a": 1}, big),))
        sender.start()  # more than the pipe holds: sent while the loop reads
        assert await waiting == (P.RESULT, {"a": 1}, big)
        sender.join()
        two = P.encode(P.RESULT, {"n": 1}, b"x") + P.encode(P.ERROR, {"errorType": "E"}, b"y")
        agent.sendall(two[:3])  # inside the length prefix
        await asyncio.sleep(0.01)
        agent.sendall(two[3:])
        assert await channel.read() == (P.RESULT, {"n": 1}, b"x")
        assert await channel.read() == (P.ERROR, {"errorType": "E"}, b"y")
        channel.write(P.encode(P.INIT, {"k": "v"}))
        channel.write(
            P.encode(P.INVOKE, {"request_id": "r", "deadline_ms": 1}, big)
        )  # more than the pipe holds
        received = await asyncio.to_thread(lambda: [agent.reader.recv(), agent.reader.recv()])
        assert received[0] == (P.INIT, {"k": "v"}, b"")
        assert received[1][0] == P.INVOKE and received[1][2] == big
        agent.close()
        assert await channel.read() is None
        assert await channel.read() is None  # and stays ended
        channel.close()
        await asyncio.sleep(0)  # libuv closes the fds as the transports close
        assert not any(_is_open(fd) for fd in agent.host)

    async def bad_length() -> None:
        agent = _AgentEnds()
        channel = await FrameChannel.connect(*agent.host)
        agent.sendall((P.MAX_FRAME + 1).to_bytes(4, "big") + b"junk")
        assert await channel.read() is None  # a broken stream ends the channel
        channel.close()
        agent.close()

    async def ended_by_host() -> None:
        agent = _AgentEnds()
        channel = await FrameChannel.connect(*agent.host)
        waiting = asyncio.ensure_future(channel.read())
        await asyncio.sleep(0.01)
        channel.end()  # the deadline's timer, after it killed the sandbox
        assert await waiting is None
        agent.sendall(P.encode(P.RESULT, {}, b"late"))
        await asyncio.sleep(0.01)
        assert await channel.read() is None
        channel.close()
        agent.close()

    async def agent_stops_reading() -> None:
        agent = _AgentEnds()
        channel = await FrameChannel.connect(*agent.host)
        try:
            waiting = asyncio.ensure_future(channel.read())
            agent.close_reading()  # its write end still open: only the write pipe sees the agent go
            channel.write(P.encode(P.INIT, {}))
            assert await asyncio.wait_for(waiting, 5) is None
        finally:
            channel.close()
            agent.close()

    for case in (run, bad_length, ended_by_host, agent_stops_reading):
        uvloop.run(case())
