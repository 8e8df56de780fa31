"""The agent: the first process of a sandbox, connected to the host by two inherited pipes.

``agent python HANDLER`` is the Python runtime itself: it imports the handler once and calls it per
INVOKE frame. ``agent api CMD...`` serves the Runtime API 2018-06-01 on 127.0.0.1:9001 and starts CMD
(a custom ``bootstrap`` or the Node bootstrap), translating between HTTP and frames.

Standard library only, imports kept lazy: this is on the cold path.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs about a megabyte in every sandbox; annotations are strings here
    from typing import Any

if __package__:
    from . import protocol as P
else:  # run as a script
    import protocol as P  # type: ignore[no-redef]

AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME_API = "127.0.0.1:9001"
MAX_RESPONSE = 6_291_556  # AWS's limit for a synchronous response (6 MB and 100 bytes)
RESPONSE_TOO_LARGE = {
    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
    "errorType": "Function.ResponseSizeTooLarge",
}
ERROR_LOG_IDENT = "\u00a0"
ERROR_LOG_LINE_TERMINATE = "\r"


class Channel:
    """The control pipes (frames in on one, out on the other), with a lock so that several threads
    can send frames."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        for fd in {read_fd, write_fd}:
            os.set_inheritable(fd, False)  # user subprocesses must not inherit them
        self._write_fd = write_fd
        self._lock = threading.Lock()
        self._reader = P.BlockingReader(functools.partial(os.read, read_fd))

    def send(self, kind: int, header: dict[str, Any] | None = None, body: bytes = b"") -> None:
        self.send_raw(kind, P.encode_header(header), body)

    def send_raw(self, kind: int, header: bytes, body: bytes) -> None:
        """A frame whose header is already bytes: the invoke loop's RESULT has none at all."""
        data = P.encode_raw(kind, header, body)
        with self._lock:
            written = os.write(self._write_fd, data)  # all of it, unless a signal cut it short
            while written < len(data):
                written += os.write(self._write_fd, memoryview(data)[written:])

    def recv(self) -> tuple[int, dict[str, Any], bytes] | None:
        return self._reader.recv()


def error_json(message: str, error_type: str, request_id: str = "", trace: list[str] | None = None) -> bytes:
    doc = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace or [],
    }
    return json.dumps(doc).encode()


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# --- the Python runtime -------------------------------------------------------------------------


class Fault(Exception):
    """An error with one of AWS's runtime error types."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


def load_handler(handler: str) -> Any:
    import importlib

    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}") from e
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module"
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}") from e
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace) from e
    try:
        return getattr(module, fname)
    except AttributeError as e:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'") from e


def user_traceback(tb: Any) -> list[str]:
    """The traceback as awslambdaric formats it, starting at the first frame outside the agent."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if not frame[0].startswith(AGENT_DIR):
            frames = frames[i:]
            break
    return traceback.format_list(frames)  # type: ignore[arg-type]


def log_error(error_type: str, message: str, trace: list[str]) -> None:
    """Write an error to the log as the managed runtime does (lines joined by carriage returns)."""
    first = "[ERROR]" + (f" {error_type}:" if error_type else "") + (f" {message}" if message else "")
    lines = [first, "Traceback (most recent call last):"]
    for element in trace:
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append(ERROR_LOG_IDENT * (len(line) - len(stripped)) + stripped)
    sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


class _ClientContext:
    __slots__ = ["custom", "env", "client"]

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class _Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self) -> str:
        fields = ",".join(f"{k}={getattr(self, k)}" for k in self.__slots__)
        return f"Client([{fields}])"


class _CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


def _obj(cls: Any, data: Any) -> Any:
    if data is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, data.get(name) if isinstance(data, dict) else None)
    return obj


class LambdaContext:
    """The same attributes and methods as awslambdaric's LambdaContext."""

    #: (log group, log stream, function name, memory, version): set by the platform, read once
    #: when the runtime starts (``_platform_fields``) instead of five environ lookups per invoke.
    platform: tuple[str | None, ...] = (None,) * 5

    def __init__(self, header: dict[str, Any], client_context: Any, identity: Any) -> None:
        self.aws_request_id = header["request_id"]
        (self.log_group_name, self.log_stream_name, self.function_name, self.memory_limit_in_mb,
         self.function_version) = LambdaContext.platform  # fmt: skip
        self.invoked_function_arn = header.get("invoked_function_arn")
        self.tenant_id = header.get("tenant_id")
        self._epoch_deadline_time_in_ms = int(header["deadline_ms"])
        if isinstance(identity, dict):
            self.identity = _CognitoIdentity(
                identity.get("cognitoIdentityId"), identity.get("cognitoIdentityPoolId")
            )
        else:
            self.identity = _CognitoIdentity()
        if client_context is None:  # the usual case, kept short: this runs on every invoke
            self._w3c_fields: dict[str, str] = {}
            self.client_context = None
            return
        w3c = client_context.pop("w3c", None) if isinstance(client_context, dict) else None
        self._w3c_fields = {k: v for k, v in (w3c or {}).items() if isinstance(v, str)}
        self.client_context = _obj(_ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj(_Client, self.client_context.client)

    def get_remaining_time_in_millis(self) -> int:
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def w3c(self) -> dict[str, str]:
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )


def _platform_fields() -> tuple[str | None, ...]:
    env = os.environ
    names = ("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_FUNCTION_NAME",
             "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION")  # fmt: skip
    return tuple(env.get(name) for name in names)


class _RequestState:
    request_id = ""

    def __init__(self) -> None:
        self.trace_variable = TraceIdVariable()


def setup_logging(state: _RequestState) -> None:
    """Root handler formatting records as '[LEVEL]\\t<time>\\t<request id>\\t<message>'."""
    import logging

    class RequestIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = state.request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        root.setLevel(level.upper())


def _json_default(obj: Any) -> Any:
    import decimal

    if isinstance(obj, decimal.Decimal):
        return float(obj) if obj != obj.to_integral_value() else int(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


#: Made once: json.dumps with ``default=`` builds a new encoder on every call. The output is
#: json.dumps's: the same separators and ASCII escapes.
_encode_result = json.JSONEncoder(default=_json_default).encode


def marshal(result: Any) -> bytes:
    if type(result) is bytes:
        return result
    try:
        return _encode_result(result).encode()
    except Exception as e:
        raise Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from e


def unmarshal(body: bytes) -> Any:
    if not body:
        return {}
    try:
        return P.json_loads(body)
    except ValueError as e:
        raise Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}") from e


def run_python(channel: Channel, handler_name: str) -> None:
    started = time.monotonic()
    set_python_path()
    state = _RequestState()
    setup_logging(state)
    try:
        handler = load_handler(handler_name)
    except Fault as f:
        log_error(f.error_type, f.message, f.trace)
        flush_std()
        body = error_json(f.message, f.error_type, "", f.trace)
        channel.send(P.INIT_ERROR, {"errorType": f.error_type, "errorMessage": f.message}, body)
        return
    LambdaContext.platform = _platform_fields()
    channel.send(P.READY, {"init_duration_ms": (time.monotonic() - started) * 1000})
    while (frame := channel.recv()) is not None:
        kind, header, body = frame
        if kind == P.INVOKE:
            invoke_python(channel, handler, state, header, body)


def invoke_python(
    channel: Channel, handler: Any, state: _RequestState, header: dict[str, Any], body: bytes
) -> None:
    """One invoke. Lean on purpose: a 128 MB function gets 7% of a CPU, and what this costs on
    every invoke comes out of that share (docs/performance.md)."""
    request_id = header["request_id"]
    state.request_id = request_id
    state.trace_variable.set(header.get("trace_id"))
    try:
        event = unmarshal(body)
        client_context = header.get("client_context")
        identity = header.get("cognito_identity")
        context = LambdaContext(
            header, _parse(client_context) if client_context else None, _parse(identity) if identity else None
        )
        response = marshal(handler(event, context))
    except Fault as f:
        log_error(f.error_type, f.message, f.trace)
        send_error(
            channel, request_id, f.error_type, error_json(f.message, f.error_type, request_id, f.trace)
        )
        return
    except Exception as e:
        trace = user_traceback(e.__traceback__)
        log_error(type(e).__name__, str(e), trace)
        send_error(
            channel, request_id, type(e).__name__, error_json(str(e), type(e).__name__, request_id, trace)
        )
        return
    flush_std()
    channel.send_raw(P.RESULT, b"", response)


def send_error(channel: Channel, request_id: str, error_type: str, body: bytes) -> None:
    flush_std()
    channel.send(P.ERROR, {"request_id": request_id, "errorType": error_type}, body)


def _parse(value: Any) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


TRACE_ID_VAR = "_X_AMZN_TRACE_ID"


class TraceIdVariable:
    """_X_AMZN_TRACE_ID, which AWS changes on every invoke.

    Through os.environ every new value is a setenv(), and glibc keeps every string setenv() was
    ever given: 140 bytes per invoke, so a 128 MB function would run out of memory after about a
    million invokes. After the first ``ADOPT_AFTER`` invokes the variable moves into one buffer of ours that
    is handed to putenv() once and rewritten in place; os.environ's own copy is kept in step. If the
    function sets or removes the variable itself, the buffer is handed over again on the next invoke.
    """

    #: ctypes takes 2 ms to import where the spare sandbox has not preloaded it: not on a first invoke.
    ADOPT_AFTER = 64
    _KEY = TRACE_ID_VAR.encode()  # as os.environ keeps it
    _ENTRY = _KEY + b"="

    def __init__(self) -> None:
        self._invokes = 0
        self._no_ctypes = False
        self._buffer: Any = None
        self._last: bytes | None = None

    def set(self, trace_id: str | None) -> None:
        if self._buffer is None and not self._adopt():
            if trace_id:
                os.environ[TRACE_ID_VAR] = trace_id
            else:
                os.environ.pop(TRACE_ID_VAR, None)
            return
        data = self._data
        if not trace_id:
            if self._KEY in data:
                os.environ.pop(TRACE_ID_VAR, None)  # unsetenv() takes our buffer out of the environment
            self._last = None
            return
        value = trace_id.encode()
        entry = self._ENTRY + value
        if len(entry) >= len(self._buffer):
            self._buffer = self._new_buffer(2 * len(entry))
            self._last = None
        # Ours is in the environment unless it never was, was removed, or the function set its own.
        installed = self._last is not None and data.get(self._KEY) is self._last
        self._buffer.value = entry
        if not installed:
            self._putenv(self._buffer)
        data[self._KEY] = value
        self._last = value

    def _adopt(self) -> bool:
        self._invokes += 1
        if self._invokes <= self.ADOPT_AFTER or self._no_ctypes:
            return False
        try:
            import ctypes

            putenv = ctypes.CDLL(None).putenv
            putenv.argtypes = [ctypes.c_char_p]
            self._data: dict[bytes, bytes] = os.environ._data  # type: ignore[attr-defined]
        except (ImportError, OSError, AttributeError):
            self._no_ctypes = True  # os.environ it is
            return False
        self._putenv = putenv
        self._new_buffer = ctypes.create_string_buffer
        self._buffer = self._new_buffer(256)
        return True


def set_python_path() -> None:
    """/var/task first, then the layers, then the interpreter's own paths (without the agent's)."""
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    task = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    head = [task, "/opt/python", f"/opt/python/lib/{ver}/site-packages"]
    rest = [p for p in sys.path if p not in ("", ".", AGENT_DIR, *head)]
    sys.path[:] = head + rest
    if os.path.isdir(task):
        os.chdir(task)


# --- the Runtime API for other runtimes --------------------------------------------------------


def exit_description(status: int) -> str:
    """How Go's os.ProcessState (and so AWS) describes an exit: 'exit status 1', 'signal: killed'."""
    import signal

    if status >= 0:
        return f"exit status {status}"
    names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGTERM: "terminated",
             signal.SIGABRT: "aborted", signal.SIGINT: "interrupt", signal.SIGBUS: "bus error"}  # fmt: skip
    sig = -status
    return "signal: " + names.get(sig, (signal.strsignal(sig) or str(sig)).lower())  # type: ignore[call-overload]


class RuntimeApi:
    """State shared by the HTTP threads, the runtime watcher and the frame loop."""

    def __init__(self, channel: Channel) -> None:
        import queue

        self.channel = channel
        self.started = time.monotonic()
        self.invocations: queue.Queue[tuple[dict[str, Any], bytes]] = queue.Queue()
        self.ready_sent = False
        self.init_failed = False
        self.current: str | None = None
        self.lock = threading.Lock()

    def next_invocation(self) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            if not self.ready_sent and not self.init_failed:
                self.ready_sent = True
                self.channel.send(P.READY, {"init_duration_ms": (time.monotonic() - self.started) * 1000})
        header, body = self.invocations.get()
        with self.lock:
            self.current = header["request_id"]
        return header, body  # the runtime gets the trace id in a header: nothing here reads it

    def finish(self, request_id: str, kind: int, header: dict[str, Any], body: bytes) -> bool:
        with self.lock:
            if request_id != self.current:
                return False
            self.current = None
        flush_std()
        self.channel.send(kind, {"request_id": request_id, **header}, body)
        return True

    def init_error(self, error_type: str, body: bytes) -> None:
        with self.lock:
            if self.ready_sent or self.init_failed:
                return
            self.init_failed = True
        message = _error_message(body)
        self.channel.send(P.INIT_ERROR, {"errorType": error_type, "errorMessage": message}, body)

    def runtime_exited(self, status: int) -> None:
        reason = exit_description(status)
        with self.lock:
            request_id, before_ready = self.current, not self.ready_sent
        if before_ready:
            message = f"Runtime exited with error: {reason}"
            self.init_error("Runtime.ExitError", error_json(message, "Runtime.ExitError"))
        else:
            prefix = f"RequestId: {request_id} Error: " if request_id else ""
            message = f"{prefix}Runtime exited with error: {reason}"
            self.channel.send(P.EXIT, {"request_id": request_id, "errorType": "Runtime.ExitError",
                                       "errorMessage": message})  # fmt: skip


def _error_message(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return str(doc.get("errorMessage", "")) if isinstance(doc, dict) else ""
    except ValueError:
        return ""


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            413: "Request Entity Too Large", 500: "Internal Server Error"}  # fmt: skip
MAX_HEADER_LINES = 100


class _Headers(dict):  # type: ignore[type-arg]
    """Headers by lower-cased name; ``get`` and ``get_all`` as on http.client's message class."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> Any:
        return super().get(name.lower())

    def get_all(self, name: str, default: Any = None) -> Any:
        value = super().get(name.lower())
        return default if value is None else [value]


def _parse_headers(fp: Any, _class: Any = None) -> _Headers:
    """Request headers without the email package: http.client.parse_headers() runs every header
    block through email.parser, the largest cost of a Runtime API request (two per invoke).
    Installed in the agent's process only, which runs nothing but the agent."""
    import http.client

    headers = _Headers()
    for _ in range(MAX_HEADER_LINES):
        line = fp.readline(65537)
        if len(line) > 65536:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    raise http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers")


def make_http_handler(api: RuntimeApi) -> Any:
    import http.server

    prefix = "/2018-06-01/runtime/"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the body then waits for the
        # runtime's delayed ACK of the headers: 40 ms, twice per invoke (the next event, the 202).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            """The whole response in one write (send_response() would add a Date, a Server and a
            second write per response: this runs twice per invoke)."""
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                    "Content-Type: application/json", f"Content-Length: {len(body)}"]  # fmt: skip
            if headers:
                head += [f"{k}: {v}" for k, v in headers.items()]
            if self.close_connection:
                head.append("Connection: close")
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

        def fail(self, status: int, error_type: str, message: str) -> None:
            self.reply(status, json.dumps({"errorMessage": message, "errorType": error_type}).encode())

        def read_body(self) -> tuple[bytes | None, dict[str, str]]:
            """The body (None when it is over MAX_RESPONSE: read and dropped) and, for a chunked
            body (a streaming response), its trailers, names lower-cased."""
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_RESPONSE:
                    self.rfile.read(length)
                    return None, {}
                return (self.rfile.read(length) if length else b""), {}
            chunks: list[bytes] = []
            size = 0
            while (length := int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)) > 0:
                data = self.rfile.read(length)
                self.rfile.readline()  # the CRLF after each chunk
                size += length
                if size <= MAX_RESPONSE:
                    chunks.append(data)
            trailers: dict[str, str] = {}
            while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                trailers[name.strip().lower()] = value.strip()
            return (b"".join(chunks) if size <= MAX_RESPONSE else None), trailers

        def do_GET(self) -> None:
            if self.path != prefix + "invocation/next":
                return self.fail(404, "InvalidRequest", "Invalid request path")
            header, body = api.next_invocation()
            headers = {
                "Lambda-Runtime-Aws-Request-Id": header["request_id"],
                "Lambda-Runtime-Deadline-Ms": str(header["deadline_ms"]),
                "Lambda-Runtime-Invoked-Function-Arn": header.get("invoked_function_arn") or "",
                "Lambda-Runtime-Trace-Id": header.get("trace_id") or "",
            }
            if header.get("client_context"):
                headers["Lambda-Runtime-Client-Context"] = header["client_context"]
            if header.get("cognito_identity"):
                headers["Lambda-Runtime-Cognito-Identity"] = header["cognito_identity"]
            self.reply(200, body, headers)

        def do_POST(self) -> None:
            body, trailers = self.read_body()
            path = self.path
            if body is None:
                parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
                    # as on AWS: the invoke fails at once, whatever the runtime does next
                    api.finish(parts[1], P.ERROR, {"errorType": "Function.ResponseSizeTooLarge"},
                               json.dumps(RESPONSE_TOO_LARGE).encode())  # fmt: skip
                return self.fail(413, "RequestEntityTooLarge",
                                 f"Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).")  # fmt: skip
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            if trailers.get("lambda-runtime-function-error-type"):  # a streaming response failed midway
                error_type = trailers["lambda-runtime-function-error-type"]
                body = _b64_or(trailers.get("lambda-runtime-function-error-body"), body)
                path = path[: -len("response")] + "error" if path.endswith("/response") else path
            if path == prefix + "init/error":
                api.init_error(error_type or "Runtime.Unknown", body)
                return self.reply(202, b'{"status":"OK"}')
            parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
            if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                return self.fail(404, "InvalidRequest", "Invalid request path")
            request_id, what = parts[1], parts[2]
            if what == "response":
                ok = api.finish(request_id, P.RESULT, {}, body)
            else:
                kind_type = error_type or _body_error_type(body) or "Unhandled"
                ok = api.finish(request_id, P.ERROR, {"errorType": kind_type}, body)
            if not ok:
                return self.fail(400, "InvalidRequestID", "Invalid request ID")
            self.reply(202, b'{"status":"OK"}')

    return Handler


def _b64_or(value: str | None, default: bytes) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(value, validate=True) if value else default
    except (binascii.Error, ValueError):
        return default


def _body_error_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    value = doc.get("errorType") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def run_api(channel: Channel, command: list[str]) -> None:
    import http.client
    import http.server
    import subprocess

    http.client.parse_headers = _parse_headers  # type: ignore[assignment]
    api = RuntimeApi(channel)
    host, port = RUNTIME_API.split(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), make_http_handler(api))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=RUNTIME_API)
    exe = (
        next((c for c in command if os.path.exists(c)), None) if command and command[0] == "--first" else None
    )
    argv = [exe] if exe else command
    if not argv or argv[0] == "--first":
        api.init_error("Runtime.InvalidEntrypoint", error_json(
            f"Couldn't find valid bootstrap(s): [{' '.join(command[1:])}]", "Runtime.InvalidEntrypoint"))  # fmt: skip
        return
    try:
        proc = subprocess.Popen(argv, env=env, cwd="/var/task" if os.path.isdir("/var/task") else "/")
    except OSError as e:
        api.init_error("Runtime.InvalidEntrypoint", error_json(str(e), "Runtime.InvalidEntrypoint"))
        return

    def watch() -> None:
        api.runtime_exited(proc.wait())
        flush_std()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    while (frame := channel.recv()) is not None:
        kind, header, body = frame
        if kind == P.INVOKE:
            api.invocations.put((header, body))
    proc.kill()


def _preload() -> None:
    """Import what every Python invoke needs while the sandbox waits for its function (the zygote
    idea): after specialization only the user's own code is left to import (json came with the
    frame protocol)."""
    import logging  # noqa: F401
    import traceback  # noqa: F401


def _specialize(header: dict[str, Any]) -> list[str]:
    """Become the environment of one function: its variables, its working directory, its runtime.

    The function's code was mounted on /var/task by the host after this process started, so the
    working directory is re-entered to see it instead of the empty directory beneath.
    """
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in header.get("env", {}).items()})
    os.chdir(os.environ.get("LAMBDA_TASK_ROOT") or "/var/task")
    # The preload's imports searched the working directory, the empty /var/task, and the import
    # system keeps that listing until the directory's mtime changes. File times are as coarse as a
    # clock tick, so code unpacked in the same tick as the spare's slot was made kept "No module
    # named 'handler'" (one of 100 in a burst). Forget every listing taken before the mount (each
    # path finder's own invalidate_caches(): importlib's would first import the importlib package).
    for finder in list(sys.path_importer_cache.values()):
        if finder is not None and hasattr(finder, "invalidate_caches"):
            finder.invalidate_caches()
    return [str(a) for a in header["argv"]]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    read_fd, write_fd = P.control_fds(os.environ.pop(P.CONTROL_FD_ENV))
    os.environ.pop("PWD", None)  # bwrap --chdir adds it; the environment is exactly the caller's
    channel = Channel(read_fd, write_fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if args[0] == "generic":
        _preload()
    frame = channel.recv()
    if frame is None or frame[0] != P.INIT:
        return
    if args[0] == "generic":
        args = _specialize(frame[1])
    if args[0] == "python":
        run_python(channel, args[1])
    else:
        run_api(channel, args[1:])
    flush_std()


if __name__ == "__main__":
    main()
