"""Frames between the host and the in-sandbox agent.

A frame is ``u32 length | u8 kind | u32 header length | header | body``, big-endian, where
``length`` counts every byte after itself. The header is a JSON object, except INVOKE's
(``encode_invoke``), and an empty header stands for ``{}``: all decode to a dict. The module is
standard-library only: the agent imports it inside the sandbox and the host imports it too.
"""

from __future__ import annotations

import json
import json.scanner
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # the agent imports this module inside every sandbox: keep typing out of it
    from collections.abc import Callable, Iterator
    from typing import Any

INIT = 1  # host -> agent: start the runtime (everything it needs is in the environment)
READY = 2  # agent -> host: {"init_duration_ms"}
INIT_ERROR = 3  # agent -> host: {"errorType", "errorMessage"}; body: error JSON
INVOKE = 4  # host -> agent: {"request_id", "deadline_ms", ...} as lines; body: payload
RESULT = 5  # agent -> host: no header (the host knows which invoke it answers); body: response bytes
ERROR = 6  # agent -> host: {"request_id", "errorType"}; body: error JSON
EXIT = 7  # agent -> host: the runtime process ended; {"request_id"?, "errorType", "errorMessage"}

KIND_NAMES = {INIT: "INIT", READY: "READY", INIT_ERROR: "INIT_ERROR", INVOKE: "INVOKE",
              RESULT: "RESULT", ERROR: "ERROR", EXIT: "EXIT"}  # fmt: skip

#: The agent's two control pipes, ``"R,W"``: it reads frames from fd R and writes frames to fd W.
#: Pipes, not a socket pair: a round trip costs each side about a third less system time.
CONTROL_FD_ENV = "_LAMBDAD_CONTROL_FD"
MAX_FRAME = 64 * 1024 * 1024
_PREFIX = struct.Struct(">I")
# Made once: json.dumps with arguments builds an encoder per call, json.loads sniffs the encoding.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODER = json.JSONDecoder()
_SCAN: Any = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]  # the C scanner where there is one


def _decode(text: str) -> Any:
    """``JSONDecoder().decode(text)``: the scanner alone when ``text`` is one value with no
    whitespace around it (every frame header, most payloads), which skips decode()'s two Python
    calls and two regex matches. Anything else goes through decode(), so its errors are decode()'s."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return _DECODER.decode(text)
    return value


_KIND_HLEN = struct.Struct(">BI")
_FRAME_HEAD = struct.Struct(">IBI")  # the length prefix, kind and header length in one pack


def control_fds_value(read_fd: int, write_fd: int) -> str:
    """``CONTROL_FD_ENV``'s value for an agent that reads from ``read_fd`` and writes to ``write_fd``."""
    return f"{read_fd},{write_fd}"


def control_fds(value: str) -> tuple[int, int]:
    """The (read, write) fds in ``CONTROL_FD_ENV``'s value."""
    read_fd, _, write_fd = value.partition(",")
    return int(read_fd), int(write_fd)


def json_loads(data: bytes) -> Any:
    """``json.loads(data)``, decoding UTF-8 directly first: json.loads would sniff the encoding of
    every payload. Anything else (a BOM, UTF-16) and any error go through json.loads itself, so what
    is accepted and how a failure is worded stay json.loads's. Both ends check invoke payloads."""
    try:
        return _decode(data.decode())
    except ValueError:
        return json.loads(data)


class FrameError(Exception):
    """A frame that does not follow the format."""


def encode(kind: int, header: dict[str, Any] | None = None, body: bytes = b"") -> bytes:
    """One frame as bytes."""
    if kind == INVOKE:
        extra = dict(header or {})
        return encode_invoke(extra.pop("request_id", ""), int(extra.pop("deadline_ms", 0)),
                             extra.pop("invoked_function_arn", ""), extra.pop("trace_id", None), extra, body)  # fmt: skip
    return encode_raw(kind, encode_header(header), body)


def encode_invoke(
    request_id: str, deadline_ms: int, function_arn: str, trace_id: str | None,
    extra: dict[str, Any] | None, payload: bytes,
) -> bytes:  # fmt: skip
    """An INVOKE frame. Its header is lines rather than JSON: both ends handle one on every invoke,
    and the sandbox's end does it out of a 128 MB function's 7% of a CPU. A field that holds a line
    break goes into ``extra``, the JSON object on the last line, which also carries the rare keys."""
    trace_id = trace_id or ""
    if "\n" in request_id + function_arn + trace_id:
        extra = {**(extra or {}), "request_id": request_id, "invoked_function_arn": function_arn,
                 "trace_id": trace_id}  # fmt: skip
        request_id = function_arn = trace_id = ""
    raw = f"{request_id}\n{deadline_ms}\n{function_arn}\n{trace_id}"
    if extra:
        raw += "\n" + _ENCODE(extra)
    return encode_raw(INVOKE, raw.encode(), payload)


def _invoke_header(raw: str) -> dict[str, Any]:
    lines = raw.split("\n", 4)
    if len(lines) < 4:
        raise FrameError("short invoke header")
    header = {"request_id": lines[0], "deadline_ms": lines[1], "invoked_function_arn": lines[2],
              "trace_id": lines[3] or None}  # fmt: skip
    if len(lines) == 5:
        extra = _decode(lines[4])
        if not isinstance(extra, dict):
            raise FrameError("header is not an object")
        header.update(extra)
    return header


def encode_header(header: dict[str, Any] | None) -> bytes:
    """A header's bytes; an empty one is no bytes at all, which decodes to {} without JSON."""
    return _ENCODE(header).encode() if header else b""


def encode_raw(kind: int, raw: bytes, body: bytes) -> bytes:
    """One frame from a header that is already JSON bytes."""
    return _FRAME_HEAD.pack(_KIND_HLEN.size + len(raw) + len(body), kind, len(raw)) + raw + body


def frame_length(prefix: bytes | bytearray) -> int:
    """The length announced by a 4-byte prefix, checked against MAX_FRAME."""
    length = int(_PREFIX.unpack(prefix)[0])
    if length < _KIND_HLEN.size or length > MAX_FRAME:
        raise FrameError(f"bad frame length {length}")
    return length


def decode(rest: bytes | bytearray) -> tuple[int, dict[str, Any], bytes]:
    """Kind, header and body from the bytes that follow the length prefix."""
    return decode_at(rest, 0)


def decode_at(data: bytes | bytearray, pos: int) -> tuple[int, dict[str, Any], bytes]:
    """``decode`` of ``data[pos:]`` without copying it first: a frame straight from a read."""
    end = len(data)
    if end - pos < _KIND_HLEN.size:
        raise FrameError("short frame")
    kind, hlen = _KIND_HLEN.unpack_from(data, pos)
    start = pos + _KIND_HLEN.size
    if start + hlen > end:
        raise FrameError("header longer than frame")
    if hlen == 0:  # no header at all: an empty object (a RESULT's, on every invoke)
        return kind, {}, bytes(data[start:])
    try:
        text = data[start : start + hlen].decode()
        header = _invoke_header(text) if kind == INVOKE else _decode(text)
    except ValueError as e:
        raise FrameError(f"bad header: {e}") from e
    if not isinstance(header, dict):
        raise FrameError("header is not an object")
    return kind, header, bytes(data[start + hlen :])


class FrameSplitter:
    """Cuts whole frames out of a byte stream as it arrives. The agent's blocking reader and the
    host's asyncio protocol both read through one."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def whole(self, data: bytes) -> tuple[int, dict[str, Any], bytes] | None:
        """The usual case, checked first: ``data`` is exactly one frame and none is begun, so it is
        decoded from the read itself. None otherwise (then ``feed`` it)."""
        if self.buffer or len(data) <= _PREFIX.size:
            return None
        if _PREFIX.size + frame_length(data[: _PREFIX.size]) != len(data):
            return None
        return decode_at(data, _PREFIX.size)

    def feed(self, data: bytes) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        """The frames ``data`` completes, in order, each cut out when asked for (so a broken frame
        raises only after the whole ones before it); a partial frame waits for the next feed."""
        buf = self.buffer
        buf += data
        while len(buf) >= _PREFIX.size:
            end = _PREFIX.size + frame_length(buf[: _PREFIX.size])
            if len(buf) < end:
                return
            frame = decode(buf[_PREFIX.size : end])
            del buf[:end]
            yield frame

    def missing(self) -> int:
        """Bytes still to come of the frame begun in the buffer."""
        buf = self.buffer
        if len(buf) < _PREFIX.size:
            return _PREFIX.size - len(buf)
        return _PREFIX.size + frame_length(buf[: _PREFIX.size]) - len(buf)


class BlockingReader:
    """Frames from a blocking stream, through its ``read(n)`` (``os.read`` of the control pipe in the
    agent, a socket's ``recv`` in tests). Reads ahead, so a small frame costs one read rather than
    one for its length and one for the rest (the agent's per-invoke read)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._splitter = FrameSplitter()
        self._pending: Iterator[tuple[int, dict[str, Any], bytes]] | None = None

    def recv(self) -> tuple[int, dict[str, Any], bytes] | None:
        """The next frame; None at a clean end of stream."""
        splitter = self._splitter
        while True:
            if self._pending is not None:
                if (frame := next(self._pending, None)) is not None:
                    return frame
                self._pending = None
            chunk = self._read(max(splitter.missing(), 1 << 16))
            if not chunk:
                if splitter.buffer:
                    raise FrameError("stream ended inside a frame")
                return None
            if (frame := splitter.whole(chunk)) is not None:
                return frame
            self._pending = splitter.feed(chunk)
