"""The host's ends of a sandbox's two control pipes, as an asyncio protocol.

Every warm invoke reads one frame here, so frames are cut out of the bytes as they arrive
(``protocol.FrameSplitter``, as the agent's reader does) and handed straight to the waiting
invoke: no StreamReader, no readexactly() per frame part.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import Any

from lambdad.runtime import protocol as P

Frame = tuple[int, dict[str, Any], bytes]


class FrameChannel(asyncio.Protocol):
    """Frames in order; ``read()`` returns None once the stream has ended or broke the format."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()  # kept: on Python 3.11 each call is a getpid()
        self.transport: asyncio.ReadTransport | None = None
        self.writer: asyncio.WriteTransport | None = None
        self._splitter = P.FrameSplitter()
        self._frames: deque[Frame] = deque()
        self._waiter: asyncio.Future[Frame | None] | None = None
        self._ended = False

    @classmethod
    async def connect(cls, read_fd: int, write_fd: int) -> FrameChannel:
        """Frames read from ``read_fd`` and written to ``write_fd``; both are closed by ``close()``
        (by libuv: each is handed to its transport as a ``_TransportOwned``)."""
        loop = asyncio.get_running_loop()
        try:
            _, channel = await loop.connect_read_pipe(cls, _TransportOwned(read_fd))
        except BaseException:
            os.close(write_fd)
            raise
        try:
            writer, _ = await loop.connect_write_pipe(lambda: _WriteEnd(channel), _TransportOwned(write_fd))
        except BaseException:
            channel.close()
            raise
        channel.writer = writer
        return channel

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        try:
            frame = self._splitter.whole(data)
            if frame is not None:
                self._deliver(frame)
                return
            for frame in self._splitter.feed(data):
                self._deliver(frame)
        except P.FrameError:
            self.end()
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool:
        self.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.end()

    # --- the environment's side ----------------------------------------------------------------

    def read(self) -> asyncio.Future[Frame | None]:
        """The next frame, as a future to await (a plain future: no coroutine per frame)."""
        waiter: asyncio.Future[Frame | None] = self.loop.create_future()
        if self._frames:
            waiter.set_result(self._frames.popleft())
        elif self._ended:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    def write(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)

    def end(self) -> None:
        """No frame after this one: the reader gets None (a killed sandbox, a broken stream)."""
        self._ended = True
        self._splitter.buffer.clear()
        self._wake(None)

    def close(self) -> None:
        self.end()
        for transport in (self.transport, self.writer):
            if transport is not None:
                transport.close()

    def _deliver(self, frame: Frame) -> None:
        if not self._wake(frame):
            self._frames.append(frame)

    def _wake(self, result: Frame | None) -> bool:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return False
        waiter.set_result(result)
        return True


class _WriteEnd(asyncio.BaseProtocol):
    """The write pipe's protocol: the agent's end closing (its sandbox died) ends the channel."""

    def __init__(self, channel: FrameChannel) -> None:
        self.channel = channel

    def connection_lost(self, exc: Exception | None) -> None:
        self.channel.end()


class _TransportOwned:
    """A pipe end as the file object a pipe transport asks for. libuv closes the fd when the
    transport closes, and the transport then calls ``close()`` on this object too: a no-op here, as
    a second close of the same number could close a file another thread had opened meanwhile."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        pass
