"""What one hop through the server's event loop costs on this machine, next to a blocking hop.

A warm invoke crosses two process boundaries (client to server, server to sandbox); the floor
server crosses one. Each crossing through an asyncio (uvloop) loop costs a loop iteration, a
future and a task step on top of the kernel's socket round trip. This measures both with the
agent's own frames and a child process that answers them the way the agent does, so the report
can say how much of the warm latency is the hop itself rather than lambdad's code.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from typing import Any

import uvloop

from bench.common import percentile
from lambdad.runtime import protocol as P

HEADER = {
    "request_id": "8f7a1c2e-0000-4000-8000-000000000000",
    "deadline_ms": 1_700_000_000_000,
    "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:bench-noop",
    "trace_id": "Root=1-00000000-000000000000000000000000",
}


def _answer_frames(sock: socket.socket) -> None:
    """The child: read INVOKE frames, answer RESULT frames (the agent's loop, without a handler)."""
    reader = P.BlockingReader(sock.recv)
    while (frame := reader.recv()) is not None:
        sock.sendall(P.encode(P.RESULT, {"request_id": frame[1]["request_id"]}, b"{}"))


def _with_child(measure: Any, n: int) -> list[float]:
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        parent.close()
        try:
            _answer_frames(child)
        finally:
            os._exit(0)
    child.close()
    try:
        return list(measure(parent, n))
    finally:
        parent.close()
        os.waitpid(pid, 0)


def _blocking(sock: socket.socket, n: int) -> list[float]:
    reader = P.BlockingReader(sock.recv)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        sock.sendall(P.encode(P.INVOKE, HEADER, b"{}"))
        reader.recv()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


class _Frames(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.frames: deque[Any] = deque()
        self.waiter: asyncio.Future[Any] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            need = 4 + P.frame_length(self.buffer[:4])
            if len(self.buffer) < need:
                break
            self.frames.append(P.decode(self.buffer[4:need]))
            del self.buffer[:need]
        if self.frames and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> Any:
        while not self.frames:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.frames.popleft()


def _through_loop(sock: socket.socket, n: int) -> list[float]:
    async def main() -> list[float]:
        _, frames = await asyncio.get_running_loop().create_unix_connection(_Frames, sock=sock)
        assert frames.transport is not None
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            frames.transport.write(P.encode(P.INVOKE, HEADER, b"{}"))
            await frames.read()
            samples.append((time.perf_counter() - start) * 1000)
        frames.transport.close()
        return samples

    return uvloop.run(main())


def measure(n: int) -> tuple[float, float]:
    """p50 (ms) of a frame round trip through a uvloop loop, and through blocking sockets."""
    _with_child(_blocking, min(n, 200))  # warm both paths once
    looped = _with_child(_through_loop, n)
    blocking = _with_child(_blocking, n)
    return percentile(looped, 50), percentile(blocking, 50)
