import asyncio
import socket
import threading

import pytest

from lambdad.runtime import protocol as P


def test_round_trip() -> None:
    data = P.encode(P.INVOKE, {"request_id": "r", "deadline_ms": 5}, b"\x00payload")
    length = P.frame_length(data[:4])
    assert length == len(data) - 4
    assert P.decode(data[4:]) == (P.INVOKE, {"request_id": "r", "deadline_ms": 5}, b"\x00payload")


def test_empty_header_and_body() -> None:
    data = P.encode(P.INIT)
    assert P.decode(data[4:]) == (P.INIT, {}, b"")


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
        reader = P.BlockingReader(b)  # both frames arrive in one read: the second is kept for later
        assert reader.recv() == (P.READY, {"init_duration_ms": 1.5}, b"")
        assert reader.recv() == (P.RESULT, {"request_id": "x"}, b"42")
        big = bytes(range(256)) * 5000  # larger than one read: assembled from several
        sender = threading.Thread(target=a.sendall, args=(P.encode(P.RESULT, {"request_id": "y"}, big),))
        sender.start()  # more than the socket buffer holds: sent while the reader reads
        assert reader.recv() == (P.RESULT, {"request_id": "y"}, big)
        sender.join()
        a.shutdown(socket.SHUT_WR)
        assert reader.recv() is None


def test_blocking_truncated_frame() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(P.encode(P.RESULT, {}, b"abcdef")[:-2])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(P.FrameError):
            P.BlockingReader(b).recv()


def test_async_frames() -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        big = bytes(range(256)) * 5000
        reader.feed_data(P.encode(P.INVOKE, {"a": 1}, big))
        reader.feed_data(P.encode(P.ERROR, {"errorType": "E"})[:3])
        assert await P.read_frame(reader) == (P.INVOKE, {"a": 1}, big)
        reader.feed_eof()
        with pytest.raises(P.FrameError):
            await P.read_frame(reader)
        empty = asyncio.StreamReader()
        empty.feed_eof()
        assert await P.read_frame(empty) is None

    asyncio.run(run())
