"""Plain processes: the same interface with NO isolation, for hosts without namespaces.

The agent runs as the server's user, sees the host's files and network, and has no limits but the
ones the caller enforces (timeouts). ``LAMBDA_TASK_ROOT`` points at the code directory instead of
/var/task. The server must warn loudly when it uses this backend.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from lambdad.runtime import protocol as P
from lambdad.sandbox.base import (
    RUNTIME_DIR,
    AgentProcess,
    SandboxError,
    SandboxSpec,
    agent_command,
    no_memory_peak,
)


class ProcessSandbox(AgentProcess):
    def __init__(self, spec: SandboxSpec, tmp: Path) -> None:
        super().__init__(spec.sandbox_id)
        self.tmp = tmp

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the agent leads its own session
            except ProcessLookupError:
                pass

    def limit_cpu(self) -> None:
        pass

    def oom_killed(self) -> bool:
        return False

    def memory_peak(self) -> Callable[[], int]:
        return no_memory_peak

    async def destroy(self) -> None:
        if await self._release():
            shutil.rmtree(self.tmp, ignore_errors=True)


class ProcessBackend:
    name = "process"
    isolated = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __init__(self, python: str = sys.executable, node: str = "node") -> None:
        self.python = python
        self.node = shutil.which(node) or node

    async def spawn(self, spec: SandboxSpec) -> ProcessSandbox:
        box = ProcessSandbox(spec, Path(tempfile.mkdtemp(prefix=f"lambdad-{spec.sandbox_id}-")))
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        box.output_fd = rfd
        env = {**spec.env, "LAMBDA_TASK_ROOT": str(spec.code_dir), "TMPDIR": str(box.tmp),
               P.CONTROL_FD_ENV: box.agent_env()}  # fmt: skip
        argv = agent_command(self.python, spec, str(RUNTIME_DIR.parent.parent), self.node, "lambdad.runtime")
        try:
            box.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=wfd, stderr=wfd, env=env,
                pass_fds=box.agent_fds, cwd=spec.code_dir, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            await box.destroy()
            raise SandboxError(f"cannot start the agent: {e}") from e
        finally:
            box.close_agent_fds()
            os.close(wfd)
        return box
