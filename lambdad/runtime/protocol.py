"""Frames between the host and the in-sandbox agent.

A frame is ``u32 length | u8 kind | u32 header length | JSON header | body``, big-endian, where
``length`` counts every byte after itself. The module is standard-library only: the agent imports
it inside the sandbox and the host imports it too.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # the agent imports this module inside every sandbox: keep typing out of it
    from typing import Any

INIT = 1  # host -> agent: start the runtime (everything it needs is in the environment)
READY = 2  # agent -> host: {"init_duration_ms"}
INIT_ERROR = 3  # agent -> host: {"errorType", "errorMessage"}; body: error JSON
INVOKE = 4  # host -> agent: {"request_id", "deadline_ms", ...}; body: payload
RESULT = 5  # agent -> host: {"request_id"}; body: response bytes
ERROR = 6  # agent -> host: {"request_id", "errorType"}; body: error JSON
EXIT = 7  # agent -> host: the runtime process ended; {"request_id"?, "errorType", "errorMessage"}

KIND_NAMES = {INIT: "INIT", READY: "READY", INIT_ERROR: "INIT_ERROR", INVOKE: "INVOKE",
              RESULT: "RESULT", ERROR: "ERROR", EXIT: "EXIT"}  # fmt: skip

CONTROL_FD_ENV = "_LAMBDAD_CONTROL_FD"
MAX_FRAME = 64 * 1024 * 1024
_PREFIX = struct.Struct(">I")
# Made once: json.dumps with arguments builds an encoder per call, json.loads sniffs the encoding.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode
_KIND_HLEN = struct.Struct(">BI")


class FrameError(Exception):
    """A frame that does not follow the format."""


def encode(kind: int, header: dict[str, Any] | None = None, body: bytes = b"") -> bytes:
    """One frame as bytes."""
    raw = _ENCODE(header or {}).encode()
    length = _KIND_HLEN.size + len(raw) + len(body)
    return _PREFIX.pack(length) + _KIND_HLEN.pack(kind, len(raw)) + raw + body


def frame_length(prefix: bytes | bytearray) -> int:
    """The length announced by a 4-byte prefix, checked against MAX_FRAME."""
    length = int(_PREFIX.unpack(prefix)[0])
    if length < _KIND_HLEN.size or length > MAX_FRAME:
        raise FrameError(f"bad frame length {length}")
    return length


def decode(rest: bytes | bytearray) -> tuple[int, dict[str, Any], bytes]:
    """Kind, header and body from the bytes that follow the length prefix."""
    if len(rest) < _KIND_HLEN.size:
        raise FrameError("short frame")
    kind, hlen = _KIND_HLEN.unpack_from(rest)
    start = _KIND_HLEN.size
    if start + hlen > len(rest):
        raise FrameError("header longer than frame")
    try:
        header = _DECODE(rest[start : start + hlen].decode())
    except ValueError as e:
        raise FrameError(f"bad header: {e}") from e
    if not isinstance(header, dict):
        raise FrameError("header is not an object")
    return kind, header, bytes(rest[start + hlen :])


class BlockingReader:
    """Frames from a blocking socket. Reads ahead into a buffer, so a small frame costs one
    ``recv()`` rather than one for its length and one for the rest (the agent's per-invoke read)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._buffer = bytearray()

    def recv(self) -> tuple[int, dict[str, Any], bytes] | None:
        """The next frame; None at a clean end of stream."""
        buf = self._buffer
        need = _PREFIX.size
        while True:
            if len(buf) >= _PREFIX.size:
                need = _PREFIX.size + frame_length(buf[: _PREFIX.size])
                if len(buf) >= need:
                    frame = decode(buf[_PREFIX.size : need])
                    del buf[:need]
                    return frame
            chunk = self.sock.recv(max(need - len(buf), 1 << 16))
            if not chunk:
                if buf:
                    raise FrameError("stream ended inside a frame")
                return None
            buf += chunk


async def read_frame(reader: Any) -> tuple[int, dict[str, Any], bytes] | None:
    """Read one frame from an asyncio StreamReader; None at a clean end of stream."""
    import asyncio

    try:
        prefix = await reader.readexactly(_PREFIX.size)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise FrameError("stream ended inside a frame") from e
        return None
    try:
        rest = await reader.readexactly(frame_length(prefix))
    except asyncio.IncompleteReadError as e:
        raise FrameError("stream ended inside a frame") from e
    return decode(rest)
