"""The host-side handle of one execution environment: a sandbox, its agent, and their life cycle."""

from __future__ import annotations

import asyncio
import enum
import fcntl
import json
import os
import sys
import termios
import time
from typing import Any, Literal

from lambdad.environments.channel import FrameChannel
from lambdad.runtime import protocol as P
from lambdad.sandbox.base import Sandbox, SandboxBackend, SandboxSpec

MAX_LOG_BYTES = 8 * 1024 * 1024
EXIT_GRACE_S = 2.0
MIB = 1024 * 1024


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    DEAD = "dead"

    # Members are singletons compared by identity: hash them so too (Enum's hash runs Python code,
    # and every invoke makes two transitions).
    __hash__ = object.__hash__


TRANSITIONS: dict[State, frozenset[State]] = {
    State.STARTING: frozenset({State.READY, State.DEAD}),
    State.READY: frozenset({State.BUSY, State.DEAD}),
    State.BUSY: frozenset({State.READY, State.DEAD}),
    State.DEAD: frozenset({State.DEAD}),
}


class InvalidTransition(Exception):
    pass


class InitFailure(Exception):
    """The runtime failed to initialize; the sandbox is already destroyed."""

    def __init__(
        self, error_type: str, error_message: str, error_json: bytes, log: bytes, init_duration_ms: float
    ):
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.error_json = error_json
        self.log = log
        self.init_duration_ms = init_duration_ms


class InvokeRequest:
    """One invoke as the environment runs it. (Plain classes here and below, made on every invoke:
    compiled, their __init__ is C, where a dataclass's __init__ stays Python code.)"""

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        timeout_s: float,
        invoked_function_arn: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.timeout_s = timeout_s
        self.invoked_function_arn = invoked_function_arn
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.trace_id = trace_id

    def __repr__(self) -> str:
        return (
            f"InvokeRequest({self.request_id!r}, {self.invoked_function_arn!r}, timeout_s={self.timeout_s})"
        )


OutcomeKind = Literal["ok", "function_error", "timeout", "oom", "crash"]


class InvokeOutcome:
    """How an invoke ended, with what the function wrote and the memory it peaked at."""

    def __init__(
        self,
        kind: OutcomeKind,
        payload: bytes,
        error_type: str | None,
        log: bytes,
        duration_ms: float,
        max_memory_mb: int,
        environment_dead: bool,
    ) -> None:
        self.kind: OutcomeKind = kind
        self.payload = payload
        self.error_type = error_type
        self.log = log
        self.duration_ms = duration_ms
        self.max_memory_mb = max_memory_mb
        self.environment_dead = environment_dead

    def __repr__(self) -> str:
        return (f"InvokeOutcome({self.kind!r}, error_type={self.error_type!r}, {self.duration_ms:.2f} ms, "
                f"{len(self.payload)} payload bytes, {len(self.log)} log bytes, dead={self.environment_dead})")  # fmt: skip


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def exit_reason(status: int | None) -> str:
    """AWS's (Go's) wording: 'exit status 1', 'signal: killed'."""
    if status is None or status == -9:
        return "signal: killed"
    if status < 0:
        import signal

        return "signal: " + (signal.strsignal(-status) or str(-status)).lower()
    return f"exit status {status}"


_COUNT = bytearray(4)


def _unread(fd: int) -> int:
    """Bytes waiting in pipe ``fd`` (FIONREAD); 1 when that cannot be told, so the caller reads."""
    try:
        fcntl.ioctl(fd, termios.FIONREAD, _COUNT)
    except OSError:
        return 1
    return int.from_bytes(_COUNT, sys.byteorder)


class OutputCapture:
    """Collects a sandbox's stdout/stderr from a non-blocking pipe without blocking the loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.dropped = 0
        self.open = True
        asyncio.get_running_loop().add_reader(fd, self.drain)

    def drain(self) -> None:
        while self.open:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            room = MAX_LOG_BYTES - len(self.buf)
            self.buf += chunk[:room]
            self.dropped += max(0, len(chunk) - room)

    def discard(self) -> None:
        """Forget what was written between invocations (no syscall: the loop's reader keeps
        ``buf`` current, and take() drains what the loop has not seen yet)."""
        self.buf.clear()
        self.dropped = 0

    def take(self, settled: bool = False) -> bytes:
        """What was written since ``discard``. ``settled``: the caller resumed from a frame that the
        runtime sent after writing its output, so the loop has read that output already (below);
        otherwise the pipe is asked for bytes the loop has not seen yet.

        Why a frame settles it: the runtime's writes to the pipe come before its frame on the
        control pipe, and each queues its descriptor on the loop's level-triggered epoll ready
        list when it happens. So the poll that reports the frame reports the pipe too, or an earlier
        one did; libuv runs every callback of a poll before the next turn, and the coroutine that
        awaited the frame resumes only in that next turn (asyncio runs a future's callbacks with
        call_soon). Skipping the ioctl takes one system call off every invoke."""
        if not settled and self.open and _unread(self.fd):  # asking is cheaper than a read that finds nothing
            self.drain()
        out = bytes(self.buf)
        if self.dropped:
            out += f"\n[lambdad: {self.dropped} bytes of output dropped]\n".encode()
        self.buf.clear()
        self.dropped = 0
        return out

    def close(self) -> None:
        if self.open:
            self.open = False
            asyncio.get_running_loop().remove_reader(self.fd)


class Environment:
    """One execution environment. States and transitions are in TRANSITIONS; invoke() is not reentrant."""

    def __init__(self, sandbox: Sandbox, spec: SandboxSpec) -> None:
        self.sandbox = sandbox
        self._memory_peak = sandbox.memory_peak()
        self.spec = spec
        self.loop = asyncio.get_running_loop()  # kept: on Python 3.11 each call is a getpid()
        self.state = State.STARTING
        self.init_duration_ms = 0.0
        self.output = OutputCapture(sandbox.output_fd)
        self.channel: FrameChannel | None = None
        #: Set by the invoke deadline's timer, which has already killed the sandbox.
        self._expired = False
        #: Loop time at which the running invoke times out; 0.0 while none runs.
        self._deadline = 0.0
        #: One timer, moved on only when it fires (``_check_deadline``): arming and cancelling a
        #: timer on every invoke cost the loop more than the deadline check itself.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def _to(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"{self.state.value} -> {new.value}")
        self.state = new

    @classmethod
    async def start(cls, backend: SandboxBackend, spec: SandboxSpec, init_timeout_s: float) -> Environment:
        started = time.monotonic()
        sandbox = await backend.spawn(spec)
        env = cls(sandbox, spec)
        try:
            await env._init(init_timeout_s, started)
        except BaseException:
            await env.destroy()
            raise
        return env

    async def _init(self, timeout_s: float, started: float) -> None:
        self.channel = await FrameChannel.connect(*self.sandbox.take_control())
        self.channel.write(P.encode(P.INIT, self.sandbox.init_header))
        try:
            frame = await asyncio.wait_for(self._read(), timeout_s)
        except TimeoutError:
            elapsed = (time.monotonic() - started) * 1000
            message = f"Init timed out after {timeout_s:.2f} seconds"
            self.sandbox.kill()
            raise InitFailure("Sandbox.Timedout", message, error_body("Sandbox.Timedout", message),
                              self.output.take(), elapsed) from None  # fmt: skip
        elapsed = (time.monotonic() - started) * 1000
        if frame is not None and frame[0] == P.READY:
            self.init_duration_ms = float(frame[1].get("init_duration_ms", elapsed))
            self.sandbox.limit_cpu()
            self._to(State.READY)
            return
        raise await self._init_failure(frame, elapsed)

    async def _init_failure(
        self, frame: tuple[int, dict[str, Any], bytes] | None, elapsed: float
    ) -> InitFailure:
        if frame is not None and frame[0] == P.INIT_ERROR:
            header, body = frame[1], frame[2]
            error_type = str(header.get("errorType", "Runtime.Unknown"))
            return InitFailure(
                error_type, str(header.get("errorMessage", "")), body, self.output.take(), elapsed
            )
        status = await self._exit_status()
        if self.sandbox.oom_killed():
            error_type, message = "Runtime.OutOfMemory", "Runtime exited with error: signal: killed"
        else:
            error_type, message = "Runtime.ExitError", f"Runtime exited with error: {exit_reason(status)}"
        return InitFailure(error_type, message, error_body(error_type, message), self.output.take(), elapsed)

    def _read(self) -> asyncio.Future[tuple[int, dict[str, Any], bytes] | None]:
        assert self.channel is not None
        return self.channel.read()

    async def _exit_status(self) -> int | None:
        try:
            return await asyncio.wait_for(self.sandbox.wait(), EXIT_GRACE_S)
        except TimeoutError:
            return None

    def max_memory_used_mb(self) -> int:
        return -(-self._memory_peak() // MIB)

    async def invoke(self, req: InvokeRequest) -> InvokeOutcome:
        self._to(State.BUSY)
        assert self.channel is not None
        self.output.discard()  # output between invocations belongs to none of them
        deadline_ms = int(time.time() * 1000 + req.timeout_s * 1000)
        extra = None  # absent keys read as None in the agent: a shorter frame
        if req.client_context is not None or req.cognito_identity is not None:
            extra = {"client_context": req.client_context, "cognito_identity": req.cognito_identity}
        started = time.monotonic()
        self.channel.write(P.encode_invoke(req.request_id, deadline_ms, req.invoked_function_arn,
                                          req.trace_id, extra, req.payload))  # fmt: skip
        # A plain timer rather than asyncio.timeout(): at the deadline it kills the sandbox and ends
        # the control stream, which ends the read; no cancellation machinery on every invoke.
        self._watch(self.loop.time() + req.timeout_s)
        try:
            frame = await self._read()
        finally:
            self._deadline = 0.0
        if self._expired:
            return self._timed_out(req, started)
        if frame is not None and frame[0] in (P.RESULT, P.ERROR):
            self._to(State.READY)
            kind: OutcomeKind = "ok" if frame[0] == P.RESULT else "function_error"
            error_type = None if kind == "ok" else str(frame[1].get("errorType") or "Unhandled")
            return self._outcome(kind, frame[2], error_type, started, dead=False, settled=True)
        return await self._crashed(req, frame, started)

    def _watch(self, deadline: float) -> None:
        """Time out the running invoke at ``deadline``. The timer is re-armed only when it would
        fire too late: back-to-back invokes of one environment arm one per timeout period."""
        self._deadline = deadline
        if self._timer is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._check_deadline)
        self._timer_at = deadline

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline == 0.0:  # idle: the next invoke arms a timer
            return
        if self.loop.time() >= self._deadline:
            self._expire()
        else:  # a later invoke is running: wake at its deadline
            self._watch(self._deadline)

    def _expire(self) -> None:
        self._expired = True
        self.sandbox.kill()
        if self.channel is not None:
            self.channel.end()

    def _timed_out(self, req: InvokeRequest, started: float) -> InvokeOutcome:
        message = f"RequestId: {req.request_id} Error: Task timed out after {req.timeout_s:.2f} seconds"
        return self._dead_outcome("timeout", "Sandbox.Timedout", message, started)

    async def _crashed(self, req: InvokeRequest, frame: tuple[int, dict[str, Any], bytes] | None,
                       started: float) -> InvokeOutcome:  # fmt: skip
        status = await self._exit_status() if frame is None else None
        if self.sandbox.oom_killed():
            message = f"RequestId: {req.request_id} Error: Runtime exited with error: signal: killed"
            return self._dead_outcome("oom", "Runtime.OutOfMemory", message, started)
        if frame is not None and frame[0] == P.EXIT:
            message = str(frame[1].get("errorMessage", ""))
        else:
            message = f"RequestId: {req.request_id} Error: Runtime exited with error: {exit_reason(status)}"
        return self._dead_outcome("crash", "Runtime.ExitError", message, started)

    def _dead_outcome(
        self, kind: OutcomeKind, error_type: str, message: str, started: float
    ) -> InvokeOutcome:
        self.sandbox.kill()
        outcome = self._outcome(kind, error_body(error_type, message), error_type, started, dead=True)
        self._to(State.DEAD)
        return outcome

    def _outcome(self, kind: OutcomeKind, payload: bytes, error_type: str | None, started: float,
                 dead: bool, settled: bool = False) -> InvokeOutcome:  # fmt: skip
        duration = (time.monotonic() - started) * 1000
        return InvokeOutcome(kind, payload, error_type, self.output.take(settled), duration,
                             self.max_memory_used_mb(), dead)  # fmt: skip

    async def destroy(self) -> None:
        """Idempotent: afterwards the sandbox is destroyed and the state is DEAD."""
        self.state = State.DEAD
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.output.close()
        if self.channel is not None:
            self.channel.close()  # closes the control pipes through their transports
        await self.sandbox.destroy()
