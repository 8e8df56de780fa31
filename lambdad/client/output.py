"""Terminal output: tables, sizes, durations, and a progress line on stderr."""

from __future__ import annotations

import itertools
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> str:
    """Columns padded to their widest cell; the columns in ``right`` (numbers) aligned right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def mb(size: float) -> str:
    return f"{size / 1_048_576:.1f} MB"


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``10m``, ``24h``, ``7d`` or ``2w``."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 24h or 7d")
    return float(match[1]) * _UNIT_S[match[2]]


def parse_since(text: str, now: float) -> float:
    """The epoch seconds that ``--since`` names: a duration back from ``now``, or an ISO 8601 time."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (10m, 24h, 7d) nor a time (2024-05-01T12:00)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Progress:
    """One line on stderr rewritten in place on a terminal; occasional plain lines elsewhere."""

    _FRAMES = "|/-\\"

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.1 if self.tty else 2.0)
        self.clock = clock
        self._last = -1e9
        self._frames = itertools.cycle(self._FRAMES)
        self._shown = False

    def update(self, text: str, spin: bool = False) -> None:
        now = self.clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        if self.tty:
            frame = f"{next(self._frames)} " if spin else ""
            self.stream.write(f"\r{frame}{text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True

    def done(self, text: str | None = None) -> None:
        """End the progress line, optionally replacing it with a final message."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
        if text is not None:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = False


def size(n: int) -> str:
    """A byte count for people: 812 B, 3.4 KB, 12.0 MB."""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1_048_576 else mb(n)
