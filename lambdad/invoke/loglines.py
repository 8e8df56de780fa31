"""The platform's log lines (START / END / REPORT) and log stream names, as AWS writes them."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

TAIL_BYTES = 4096


def stream_name(version: str, now: datetime | None = None) -> str:
    """``2024/01/31/[$LATEST]0123456789abcdef0123456789abcdef``: one stream per environment."""
    day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{secrets.token_hex(16)}"


def billed_ms(duration_ms: float) -> int:
    """Lambda bills in 1 ms steps, rounding up, with a minimum of 1 ms."""
    return max(1, math.ceil(duration_ms))


@dataclass(frozen=True)
class Report:
    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    def line(self) -> str:
        return report_line(self.request_id, self.duration_ms, self.memory_mb, self.max_memory_mb,
                           self.init_duration_ms, self.status, self.error_type)  # fmt: skip


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """The REPORT line, without a Report: the log writer makes one per invocation, and a
    dataclass's __init__ stays Python code even where this module is compiled."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t"
    )
    if init_duration_ms is not None:
        line += f"Init Duration: {init_duration_ms:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
    if error_type is not None:
        line += f"Error Type: {error_type}\t"
    return line + "\n"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


#: What ``invocation_lines`` needs: request id, version, output, duration ms, memory MB, max memory MB.
Invocation = tuple[str, str, bytes, float, int, int]


def invocation_lines(invocation: Invocation) -> list[str]:
    """START, the function's output, END and REPORT of a warm invocation that ended on its own (a
    result or a function error). Made where they are stored: ``logwriter`` formats these."""
    request_id, version, output, duration_ms, memory_mb, max_memory_mb = invocation
    lines = [start_line(request_id, version), *output_lines(output), end_line(request_id)]
    lines.append(report_line(request_id, duration_ms, memory_mb, max_memory_mb))
    return lines


def output_lines(output: bytes) -> list[str]:
    """Split what the function wrote into one log event per line, keeping the newline as AWS does."""
    if not output:
        return []
    text = output.decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def tail(lines: list[str]) -> str:
    """The last 4 KB of an invocation's log, for ``LogType: Tail``."""
    data = "".join(lines).encode()
    return data[-TAIL_BYTES:].decode("utf-8", errors="ignore")
