"""The interface every isolation backend implements.

Contract of a :class:`Sandbox`:

* ``take_control()`` hands over the host's ends of the two control pipes (frames to the agent,
  frames from it); the agent inside holds the other ends. ``output_fd`` is the non-blocking read
  end of one pipe that carries the sandbox's stdout and stderr together.
* ``kill()`` stops every process of the sandbox at once and may be called any number of times.
* ``destroy()`` is idempotent and safe to call in any state, including after a failed spawn. When
  it returns, no process of the sandbox remains, its cgroups are removed, its /tmp is unmounted and
  its temporary directory is gone; ``output_fd`` and the control pipes not taken are closed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lambdad.runtime import protocol as P


@dataclass(frozen=True)
class SandboxSpec:
    """What to run and under which limits."""

    sandbox_id: str
    runtime: str
    code_dir: Path
    opt_dir: Path | None
    memory_mb: int
    ephemeral_mb: int
    handler: str
    env: dict[str, str] = field(default_factory=dict)


#: The in-sandbox code (agent, protocol, Node bootstrap) as installed with lambdad.
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"


class SandboxError(Exception):
    """A sandbox could not be created."""


_CLOSED = (-1, -1)


def _close(fds: tuple[int, int]) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


class AgentProcess:
    """What every backend's sandbox holds: the agent's process, the two control pipes and the output
    pipe. Of each control pipe the host keeps one end until ``take_control()`` hands it over; the
    agent's ends (``agent_fds``) are closed once it is spawned."""

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        to_agent, host_write = os.pipe()
        host_read, from_agent = os.pipe()
        self.agent_fds = (to_agent, from_agent)
        self._host_fds = (host_read, host_write)
        self.output_fd = -1
        self.proc: asyncio.subprocess.Process | None = None
        self.init_header: dict[str, object] = {}
        self._destroyed = False

    def agent_env(self) -> str:
        """The agent's CONTROL_FD_ENV value."""
        return P.control_fds_value(*self.agent_fds)

    def close_agent_fds(self) -> None:
        """The host's copies of the agent's ends, once the agent holds them (or failed to start)."""
        _close(self.agent_fds)
        self.agent_fds = _CLOSED

    def take_control(self) -> tuple[int, int]:
        """(read, write): the host's ends of the control pipes, whose closing becomes the caller's."""
        fds, self._host_fds = self._host_fds, _CLOSED
        if fds == _CLOSED:
            raise SandboxError(f"the control pipes of sandbox {self.sandbox_id} were taken or closed")
        return fds

    def kill(self) -> None:
        raise NotImplementedError

    async def _release(self) -> bool:
        """Kill and reap the agent and close its handles, once; False when already done."""
        if self._destroyed:
            return False
        self._destroyed = True
        self.kill()
        if self.proc is not None:
            await self.proc.wait()
        _close(self._host_fds)
        self._host_fds = _CLOSED
        self.close_agent_fds()
        if self.output_fd >= 0:
            os.close(self.output_fd)
            self.output_fd = -1
        return True


class Sandbox(Protocol):
    sandbox_id: str
    output_fd: int
    #: Sent with the INIT frame. A sandbox started ahead of demand learns here what to run:
    #: ``{"argv": [...], "env": {...}}``; a sandbox started for one spec already knows (``{}``).
    init_header: dict[str, object]

    def take_control(self) -> tuple[int, int]:
        """The host's (read, write) ends of the control pipes, once: closing them is the caller's."""
        ...

    async def wait(self) -> int:
        """Wait for the sandbox's first process to end; its exit status (negative: signal)."""
        ...

    def returncode(self) -> int | None: ...

    def kill(self) -> None: ...

    def limit_cpu(self) -> None:
        """Apply the CPU share proportional to memory; init runs before it, unthrottled, as on AWS."""
        ...

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the sandbox for exceeding the memory limit."""
        ...

    def memory_peak(self) -> Callable[[], int]:
        """What reads the sandbox's peak memory in bytes (0 where it is not measured). Called after
        every invoke, so a backend hands out the cgroup's own reader rather than a method of its own."""
        ...

    async def destroy(self) -> None: ...


class SandboxBackend(Protocol):
    name: str
    isolated: bool

    async def spawn(self, spec: SandboxSpec) -> Sandbox: ...

    async def start(self) -> None:
        """Begin background work (such as starting spare sandboxes)."""

    async def close(self) -> None:
        """Stop background work; destroy every sandbox not handed out."""


def is_python(runtime: str) -> bool:
    return runtime.startswith("python")


def agent_head(python: str, agent_parent: str, package: str = "_lambdad_runtime") -> list[str]:
    """The interpreter command that starts the agent: ``package``.agent imported from ``agent_parent``
    (a sandbox sees the runtime as /var/runtime/_lambdad_runtime; a plain process imports it from
    the installed lambdad package)."""
    boot = f"import sys; sys.path.insert(0, {agent_parent!r}); from {package}.agent import main; main()"
    # -S: no site module; the agent needs only the standard library, and a sandbox should not see
    # the host's site-packages. It starts faster and smaller.
    return [python, "-B", "-S", "-c", boot]


def agent_args(spec: SandboxSpec, node: str) -> list[str]:
    """What the agent runs: the Python runtime itself, or the Runtime API in front of a runtime."""
    if is_python(spec.runtime):
        return ["python", spec.handler]
    if spec.runtime.startswith("nodejs"):
        return ["api", node, "/var/runtime/bootstrap.mjs"]
    return ["api", "--first", "/var/task/bootstrap", "/opt/bootstrap"]


def agent_command(
    python: str, spec: SandboxSpec, agent_parent: str, node: str, package: str = "_lambdad_runtime"
) -> list[str]:
    """The agent's full command line for a sandbox started for ``spec``."""
    return [*agent_head(python, agent_parent, package), *agent_args(spec, node)]


def no_memory_peak() -> int:
    """``memory_peak()`` of a sandbox whose memory is not measured."""
    return 0
