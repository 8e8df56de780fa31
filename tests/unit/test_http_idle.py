"""The HTTP layer's keep-alive timeout: idle connections close, busy and recently used ones stay."""

from __future__ import annotations

import asyncio
import time

import uvloop

from lambdad.http.app import App, Headers, Request
from lambdad.http.server import HttpConnection, HttpServer

KEEP_ALIVE_S = 0.4
REQUEST = b"GET /t/%s HTTP/1.1\r\nHost: x\r\n\r\n"


async def _route(request: Request) -> tuple[int, Headers, bytes]:
    if request.path.endswith("/slow"):
        await asyncio.sleep(KEEP_ALIVE_S * 2)
    return 200, [], b"ok"


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return await reader.readexactly(2)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), seconds) == b""
    return time.monotonic() - started


def test_idle_connections_close_after_the_keep_alive_and_busy_ones_do_not() -> None:
    async def main() -> None:
        app = App({}, {}, authenticate=lambda _: None)
        app.add_raw_route("/t", _route)
        server = HttpServer(app, "127.0.0.1", 0, keep_alive_s=KEEP_ALIVE_S)
        listener = await asyncio.get_running_loop().create_server(
            lambda: HttpConnection(server), "127.0.0.1", 0
        )
        port = listener.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(4):  # used more often than the timeout: stays open well past it
                await asyncio.sleep(KEEP_ALIVE_S * 0.6)
                writer.write(REQUEST % b"fast")
                assert await _answer(reader) == b"ok"
            writer.write(REQUEST % b"slow")  # busy for twice the timeout: not closed under it
            assert await _answer(reader) == b"ok"
            idle_for = await _closed_within(reader, KEEP_ALIVE_S * 4)
            assert KEEP_ALIVE_S * 0.8 <= idle_for, idle_for  # closed once idle, not before
            writer.close()
        finally:
            listener.close()

    uvloop.run(main())
