"""What one hop through the server's event loop costs on this machine, next to a blocking hop.

A warm invoke crosses two process boundaries (client to server, server to sandbox); the floor
server crosses one. Each crossing through an asyncio (uvloop) loop costs a loop iteration, a
future and a task step on top of the kernel's pipe round trip. This measures both with the
agent's own frames and a child process that answers them the way the agent does, so the report
can say how much of the warm latency is the hop itself rather than lambdad's code.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import uvloop

from bench.common import percentile
from lambdad.environments.channel import FrameChannel
from lambdad.runtime import protocol as P

HEADER = {
    "request_id": "8f7a1c2e-0000-4000-8000-000000000000",
    "deadline_ms": 1_700_000_000_000,
    "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:bench-noop",
    "trace_id": "Root=1-00000000-000000000000000000000000",
}


def _answer_frames(read_fd: int, write_fd: int) -> None:
    """The child: read INVOKE frames, answer RESULT frames (the agent's loop, without a handler)."""
    reader = P.BlockingReader(functools.partial(os.read, read_fd))
    while (frame := reader.recv()) is not None:
        os.write(write_fd, P.encode(P.RESULT, {"request_id": frame[1]["request_id"]}, b"{}"))


def _with_child(measure: Any, n: int) -> list[float]:
    """``measure(read_fd, write_fd, n)`` against a child holding the other ends of two pipes, as a
    sandbox's agent holds them."""
    to_child, host_write = os.pipe()
    host_read, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        try:
            os.close(host_write)
            os.close(host_read)
            _answer_frames(to_child, from_child)
        finally:
            os._exit(0)
    os.close(to_child)
    os.close(from_child)
    try:
        return list(measure(host_read, host_write, n))
    finally:
        os.waitpid(pid, 0)


def _blocking(read_fd: int, write_fd: int, n: int) -> list[float]:
    reader = P.BlockingReader(functools.partial(os.read, read_fd))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        os.write(write_fd, P.encode(P.INVOKE, HEADER, b"{}"))
        reader.recv()
        samples.append((time.perf_counter() - start) * 1000)
    os.close(write_fd)  # the child's end of the stream
    os.close(read_fd)
    return samples


def _through_loop(read_fd: int, write_fd: int, n: int) -> list[float]:
    """The server's way: lambdad's FrameChannel on the loop (it closes both fds)."""

    async def main() -> list[float]:
        channel = await FrameChannel.connect(read_fd, write_fd)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            channel.write(P.encode(P.INVOKE, HEADER, b"{}"))
            await channel.read()
            samples.append((time.perf_counter() - start) * 1000)
        channel.close()
        return samples

    return uvloop.run(main())


def measure(n: int) -> tuple[float, float]:
    """p50 (ms) of a frame round trip through a uvloop loop, and through blocking pipes."""
    _with_child(_blocking, min(n, 200))  # warm both paths once
    looped = _with_child(_through_loop, n)
    blocking = _with_child(_blocking, n)
    return percentile(looped, 50), percentile(blocking, 50)
