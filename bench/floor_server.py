"""The floor: the least an HTTP server can do to run a handler per request.

A raw ``asyncio.Protocol`` on uvloop (the event loop lambdad itself uses): it parses just enough
HTTP/1.1 (request line, headers, Content-Length body, keep-alive), calls the handler in-process with
the decoded JSON event, and writes the JSON result. No auth, no routing, no isolation, no logs.
Run: ``python -m bench.floor_server PORT HANDLER_DIR`` (imports ``handler.handler`` from HANDLER_DIR).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any


class Context:
    function_name = "floor"
    aws_request_id = "0"


def make_protocol(handler: Callable[[Any, Any], Any]) -> type[asyncio.Protocol]:
    context = Context()

    class Floor(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                length = 0
                for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                end = head_end + 4 + length
                if len(self.buffer) < end:
                    return
                body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
                result = json.dumps(handler(json.loads(body or b"{}"), context)).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(result), result)
                )

    return Floor


async def serve(port: int, handler: Callable[[Any, Any], Any]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(make_protocol(handler), "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    await server.serve_forever()


def main() -> None:
    port, handler_dir = int(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, handler_dir)
    handler = importlib.import_module("handler").handler
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(port, handler))


if __name__ == "__main__":
    main()
