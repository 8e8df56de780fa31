"""Shaping service data for the console: REPORT lines, chart buckets, package files, static assets."""

from __future__ import annotations

import re
from pathlib import Path

from lambdad.console import views
from lambdad.observe.metrics import Agg
from tests.serverproc import make_zip

STATIC = Path(views.__file__).parent / "static"


def test_parse_report_reads_the_last_report_line() -> None:
    tail = (
        "START RequestId: a Version: $LATEST\n"
        "REPORT RequestId: a\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 20 MB\tInit Duration: 30.25 ms\t\n"
        "REPORT RequestId: b\tDuration: 3.10 ms\tBilled Duration: 4 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 21 MB\t\n"
    )
    assert views.parse_report(tail) == {
        "durationMs": 3.1,
        "billedMs": 4.0,
        "memoryMb": 256.0,
        "maxMemoryMb": 21.0,
        "initMs": None,
    }
    assert views.parse_report("no report")["billedMs"] is None


def test_rebucket_merges_minutes_into_slots() -> None:
    slots = views.buckets(1000, 1900, 300)
    assert slots == [900, 1200, 1500, 1800]
    minutes = {}
    for ts, value in ((960, 1.0), (1020, 2.0), (1260, 5.0), (5000, 9.0)):
        agg = Agg()
        agg.add(value, 0)
        minutes[ts] = agg
    merged = views.rebucket(minutes, slots, 300)
    assert views.sums(merged) == [3.0, 5.0, 0.0, 0.0]
    assert views.maxima(merged) == [2.0, 5.0, 0.0, 0.0]


def test_package_files_and_small_text_only() -> None:
    data = make_zip(
        {"handler.py": "x = 1\n", "blob.bin": b"\xff\xfe", "big.txt": "a" * (views.MAX_TEXT_FILE + 1)}
    )
    assert {f["path"] for f in views.package_files(data)} == {"handler.py", "blob.bin", "big.txt"}
    assert views.package_text(data, "handler.py") == "x = 1\n"
    assert views.package_text(data, "blob.bin") is None
    assert views.package_text(data, "big.txt") is None
    assert views.package_text(data, "missing.py") is None


def test_schedules_match_the_function_and_its_qualifiers() -> None:
    arn = "arn:aws:lambda:us-east-1:0:function:f"
    assert views.schedule_targets_function({"Target": {"Arn": arn}}, arn)
    assert views.schedule_targets_function({"Target": {"Arn": arn + ":live"}}, arn)
    assert not views.schedule_targets_function({"Target": {"Arn": arn + "2"}}, arn)


def test_static_assets_never_parse_data_as_html_nor_load_remote_code() -> None:
    for asset in STATIC.iterdir():
        text = asset.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text), asset
        assert not re.search(r"""(src|href)=["']https?://""", text), asset
