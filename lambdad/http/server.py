"""lambdad's HTTP/1.1 server: an asyncio protocol on uvloop with httptools' parser, calling App directly.

Every invoke crosses this layer, so it does only what the API needs: keep-alive, pipelining (answers
in order), ``Expect: 100-continue``, HEAD, bodies read whole (up to App's largest limit, the rest
discarded and the request answered 413 by App), idle keep-alive timeout, graceful shutdown. No ASGI
message dicts, no per-request middleware or cycle object: in profiles under load uvicorn's own
frames around the same App took about a fifth of the server's busy samples, this layer under a
tenth (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import unquote

import httptools

from lambdad.http.app import DEFAULT_BODY_LIMIT, App, Headers, Request
from lambdad.seconds import PerSecond

log = logging.getLogger("lambdad.http")

#: Requests a client may pipeline before the connection stops reading from it.
MAX_PIPELINED = 16
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


def _date_line(second: int) -> bytes:
    return b"date: " + formatdate(second, usegmt=True).encode() + b"\r\n"


class HttpServer:
    """Serves ``app`` until ``stop`` is set; then drains in-flight requests for ``grace_s`` seconds."""

    def __init__(
        self, app: App, host: str, port: int, keep_alive_s: float = 75.0, grace_s: float = 10.0
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.keep_alive_s = keep_alive_s
        self.grace_s = grace_s
        self.connections: set[HttpConnection] = set()
        #: The ``date`` header line, formatted at most once a second.
        self.date = PerSecond(_date_line)
        self.closing = False

    async def serve(self, stop: asyncio.Event) -> bool:
        """Start the app, listen, serve until ``stop``; False when the app failed to start."""
        try:
            await self.app.startup()
        except Exception:
            log.exception("start-up failed")
            return False
        loop = asyncio.get_running_loop()
        try:
            listener = await loop.create_server(
                lambda: HttpConnection(self), self.host, self.port, reuse_address=True, backlog=4096
            )
        except OSError as exc:
            log.error(f"cannot listen on {self.host}:{self.port}: {exc}; choose another --port or --host")
            await self.app.shutdown()
            return False
        log.info("listening", extra={"host": self.host, "port": self.port})
        try:
            await stop.wait()
        finally:
            listener.close()
            await self._drain()
            await self.app.shutdown()
        return True

    async def _drain(self) -> None:
        """Close idle connections now and busy ones once their answer is written (or at the deadline)."""
        self.closing = True
        deadline = time.monotonic() + self.grace_s
        while True:
            for conn in list(self.connections):
                if conn.idle:
                    conn.close()
            if not self.connections or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests, runs them one at a time, writes answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.parser = httptools.HttpRequestParser(self)
        # Kept: on Python 3.11 every get_running_loop() is a getpid() system call
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.pending: deque[tuple[Request, bool, bool]] = deque()
        self.running = False
        #: Set while the connection's task waits for its next request (see ``_serve``).
        self._waiter: asyncio.Future[tuple[Request, bool, bool] | None] | None = None
        self.paused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        #: When the connection last became idle; None while a request is being read or answered.
        self.idle_since: float | None = None
        # the request being parsed
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._size = 0

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        self.server.connections.add(self)
        self.idle_since = time.monotonic()
        self._arm_idle_timer(self.server.keep_alive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._cancel_idle_timer()
        self.transport = None
        self.pending.clear()
        self._wake(None)  # the connection's task ends

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"Protocol upgrades are not supported.")
        except httptools.HttpParserError as exc:
            self._reject(400, f"Malformed HTTP request: {exc}".encode())

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue" and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= DEFAULT_BODY_LIMIT:
            self._body.append(body)

    def on_message_complete(self) -> None:
        # Any: httptools' stubs say bytes, but an absent part is None (compiled code checks types)
        url: Any = httptools.parse_url(self._url)
        raw_path: bytes = url.path or b"/"
        method = self.parser.get_method().decode("ascii", "replace")
        request = Request(
            method=method,
            path=unquote(raw_path.decode("latin-1")) if b"%" in raw_path else raw_path.decode("latin-1"),
            raw_path=raw_path,
            query_string=url.query or b"",
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in self._headers},
            raw_headers=self._headers,
            body=b"".join(self._body),
            request_id="",
            client=self.client,
            body_overflow=self._size > DEFAULT_BODY_LIMIT,
        )
        self.pending.append((request, self.parser.should_keep_alive(), method == "HEAD"))
        if len(self.pending) > MAX_PIPELINED and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if not self.running:
            self._next()

    # --- running requests ------------------------------------------------------------------------

    def _next(self) -> None:
        """Start answering the next pending request: in the connection's task, which runs them one
        after another, waiting between them. One task per connection rather than per request:
        a task's creation, registration in asyncio's task set (Python code on 3.11) and first step
        cost more than the future it waits on."""
        if not self.pending:
            self._idle()
            return
        self.running = True
        item = self.pending.popleft()
        if not self._wake(item):
            self.loop.create_task(self._serve(item))

    def _idle(self) -> None:
        self.running = False
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.idle_since = time.monotonic()

    def _wake(self, item: tuple[Request, bool, bool] | None) -> bool:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return False
        waiter.set_result(item)
        return True

    async def _serve(self, first: tuple[Request, bool, bool]) -> None:
        """Answer requests in order until the connection closes; between them, wait for the next."""
        item: tuple[Request, bool, bool] | None = first
        while item is not None:
            if not await self._answer(*item):
                return
            if self.pending:
                item = self.pending.popleft()
                continue
            self._idle()
            waiter: asyncio.Future[tuple[Request, bool, bool] | None] = self.loop.create_future()
            self._waiter = waiter
            item = await waiter

    async def _answer(self, request: Request, keep_alive: bool, head: bool) -> bool:
        """Write one request's answer; False when the connection is closed (or closing) after it.
        A crash is logged and closes the connection: the request got no answer, and one for the
        next would be taken for its."""
        try:
            status, headers, body = await self.app.handle(request)
            transport = self.transport
            if transport is None or transport.is_closing():
                return False
            keep_alive = keep_alive and not self.server.closing
            out = [
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
                self.server.date.now(),
            ]
            for name, value in headers:
                out += (name, b": ", value, b"\r\n")
            if not keep_alive:
                out.append(b"connection: close\r\n")
            out.append(b"\r\n")
            if not head:
                out.append(body)
            transport.write(b"".join(out))
            if not keep_alive:
                transport.close()
                return False
        except Exception:
            log.exception("answering a request failed")
            self.close()
            return False
        return True

    def _reject(self, status: int, message: bytes) -> None:
        """Answer a request that could not be parsed, then close: the stream's framing is lost."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(message), message)
        )
        self.transport.close()

    # --- life cycle ------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return not self.running and not self.pending

    def _arm_idle_timer(self, delay: float) -> None:
        """One timer per connection, moved on only when it fires: arming and cancelling one for
        every request cost more than the keep-alive check itself."""
        self.idle_timer = self.loop.call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        keep_alive = self.server.keep_alive_s
        if self.idle_since is None or not self.idle:
            self._arm_idle_timer(keep_alive)
            return
        left = self.idle_since + keep_alive - time.monotonic()
        if left <= 0:
            self.close()
        else:
            self._arm_idle_timer(left)

    def _cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def run(app: App, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean shutdown, 1 when start-up failed."""
    import signal

    import uvloop

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await HttpServer(app, host, port).serve(stop)

    return 0 if uvloop.run(main()) else 1
