"""Byte-compile a Python function's code once, when it is unpacked, instead of at every cold start.

Sandboxes mount the code read-only and run Python with ``-B``, so without this every new environment
compiles every module it imports (a 300 KB module: hundreds of milliseconds of Init Duration). The
``.pyc`` files are written by the runtime's own interpreter, so their magic number matches; sources
keep their timestamps, so Python validates them as usual. Behaviour is unchanged: only time is saved.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

log = logging.getLogger("lambdad.functions")


async def precompile(tree: Path, interpreter: Path) -> None:
    """Compile every ``.py`` under ``tree``; a module that does not compile is left to fail at import."""
    proc = await asyncio.create_subprocess_exec(
        str(interpreter), "-I", "-m", "compileall", "-q", "-j", "0", str(tree),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if await proc.wait() not in (0, 1):  # 1: some file did not compile, which the import will report
        log.warning("byte-compiling function code failed", extra={"tree": str(tree)})
