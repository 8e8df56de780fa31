"""Pure shaping of service data for the console: chart series, REPORT lines, package listings."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any

from lambdad.observe.metrics import Agg

#: Chart ranges the console offers: range name -> (seconds, bucket seconds).
RANGES = {"1h": (3600, 60), "3h": (3 * 3600, 180), "24h": (24 * 3600, 900)}
#: Files larger than this are listed but not shown.
MAX_TEXT_FILE = 64 * 1024

_REPORT = re.compile(
    r"REPORT RequestId: \S+\tDuration: (?P<duration>[\d.]+) ms\tBilled Duration: (?P<billed>\d+) ms\t"
    r"Memory Size: (?P<memory>\d+) MB\tMax Memory Used: (?P<used>\d+) MB"
    r"(?:\tInit Duration: (?P<init>[\d.]+) ms)?"
)


def parse_report(log_tail: str) -> dict[str, float | None]:
    """The numbers of the last REPORT line in ``log_tail`` (None where there is none)."""
    found = list(_REPORT.finditer(log_tail))
    if not found:
        return {"durationMs": None, "billedMs": None, "memoryMb": None, "maxMemoryMb": None, "initMs": None}
    last = found[-1]
    init = last.group("init")
    return {
        "durationMs": float(last.group("duration")),
        "billedMs": float(last.group("billed")),
        "memoryMb": float(last.group("memory")),
        "maxMemoryMb": float(last.group("used")),
        "initMs": float(init) if init else None,
    }


def buckets(start: int, end: int, step: int) -> list[int]:
    first = start - start % step
    return list(range(first, end, step))


def rebucket(minutes: Mapping[int, Agg], slots: list[int], step: int) -> list[Agg]:
    """Per-minute aggregates merged into ``slots`` of ``step`` seconds."""
    out = [Agg() for _ in slots]
    if not slots:
        return out
    first = slots[0]
    for ts, agg in minutes.items():
        index = (ts - first) // step
        if 0 <= index < len(out):
            out[index].merge(agg)
    return out


def sums(aggs: list[Agg]) -> list[float]:
    return [agg.sum for agg in aggs]


def maxima(aggs: list[Agg]) -> list[float]:
    return [agg.max if agg.count else 0.0 for agg in aggs]


def percentiles(aggs: list[Agg], p: float) -> list[float | None]:
    return [agg.percentile(p) for agg in aggs]


def package_files(zip_bytes: bytes) -> list[dict[str, Any]]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return [
            {"path": info.filename, "size": info.file_size}
            for info in archive.infolist()
            if not info.is_dir()
        ]


def package_text(zip_bytes: bytes, path: str) -> str | None:
    """The text of a small UTF-8 file in the package; None when missing, large or binary."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        try:
            info = archive.getinfo(path)
        except KeyError:
            return None
        if info.is_dir() or info.file_size > MAX_TEXT_FILE:
            return None
        data = archive.read(info)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def schedule_targets_function(schedule: Mapping[str, Any], function_arn: str) -> bool:
    arn = str(schedule.get("Target", {}).get("Arn", ""))
    return arn == function_arn or arn.startswith(function_arn + ":")
