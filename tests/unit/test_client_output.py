"""Client output helpers: durations, tables, REPORT lines, usage rows, the progress line."""

from __future__ import annotations

import io

import pytest

from lambdad.client import functions, invoke, usage
from lambdad.client.output import Progress, parse_duration, parse_since, size, table
from lambdad.observe.metering import Usage


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "30s", "10m", "24h", "7d", "1w")] == [
        90,
        30,
        600,
        86400,
        604800,
        604800,
    ]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("ten minutes")
    assert parse_since("10m", 10_000) == 9_400
    assert parse_since("1970-01-01T01:00", 0) == 3600
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", 0)


def test_table_aligns_numbers_right() -> None:
    assert table(("NAME", "N"), [["a", "1"], ["long", "100"]], frozenset({1})).splitlines() == [
        "NAME    N",
        "a       1",
        "long  100",
    ]


def test_sizes() -> None:
    assert [size(812), size(3_500), size(12 * 1_048_576)] == ["812 B", "3.4 KB", "12.0 MB"]


def test_report_line() -> None:
    tail = (
        "START RequestId: r Version: $LATEST\nhello\n"
        "END RequestId: r\nREPORT RequestId: r\tDuration: 1.20 ms\tBilled Duration: 2 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 9.00 ms\t\n"
    )
    lines, report = invoke.split_log(tail)
    assert lines == ["hello"]
    assert invoke.summary(report) == (
        "Duration: 1.20 ms  Billed Duration: 2 ms  Memory Size: 128 MB  Max Memory Used: 40 MB  Init Duration: 9.00 ms"
    )


def test_pretty_result() -> None:
    assert invoke.pretty(b'{"a":[1]}') == '{\n  "a": [\n    1\n  ]\n}'
    assert invoke.pretty(b"not json") == "not json"


def test_usage_rows_with_total() -> None:
    rows = usage.rows([Usage("a", 1_000_000, 1000.0, 3), Usage("b", 1, 0.5, 0)])
    assert rows[0] == ["a", "1,000,000", "1,000.000000", "3", "$0.21666670"]
    assert rows[-1][:4] == ["TOTAL", "1,000,001", "1,000.500000", "3"]
    assert usage.since_hour("all", 1e9) == 0
    assert usage.since_hour("24h", 100 * 3600) == 76


def test_function_row() -> None:
    config = {"FunctionName": "f", "Runtime": "python3.11", "MemorySize": 256, "Timeout": 9}
    config |= {
        "LastModified": "2024-05-01T12:00:00.000+0000",
        "State": "Active",
        "LastUpdateStatus": "InProgress",
    }
    assert functions.row(config) == [
        "f",
        "python3.11",
        "256 MB",
        "9 s",
        "2024-05-01 12:00:00",
        "Active (update InProgress)",
    ]


def test_progress_off_a_terminal_prints_throttled_lines() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, interval_s=1.0, clock=lambda: now[0])
    for step in range(5):
        now[0] = step * 0.5
        progress.update(f"step {step}")
    progress.done("finished")
    assert out.getvalue() == "step 0\nstep 2\nstep 4\nfinished\n"
