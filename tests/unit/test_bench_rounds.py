"""The benchmark's alternating rounds: sides take turns, and per-round wrk results combine honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import LeanClient, invoke_path, start_floor
from bench.loadgen import WrkResult, _combined
from bench.warm import Side, side_by_side
from tests.serverproc import free_port

# Each call appends "<side> <monotonic ns>" to calls.log next to the handler, so the test can see
# the order in which the two servers were really driven.
RECORDING = """
import os, time
def handler(event, context):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(f"{os.environ['SIDE']} {time.monotonic_ns()}\\n")
    return {}
"""


def test_round_results_combine_into_one_figure() -> None:
    rounds = [
        WrkResult(1000.0, 3000, 0, "", 10.0),
        WrkResult(2000.0, 6000, 2, "connect 0, read 1, write 0, timeout 0", 30.0),
        WrkResult(1500.0, 4500, 0, "", 20.0),
    ]
    combined = _combined(rounds)
    assert combined.requests_per_s == 1500.0
    assert combined.requests == 13500
    assert combined.non_2xx == 2
    assert combined.errors == "connect 0, read 1, write 0, timeout 0"
    assert combined.latency_p50_ms == 20.0


def test_sides_take_turns_for_the_given_number_of_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = []
    sides = []
    for name in ("a", "b"):
        handler_dir = tmp_path / name
        handler_dir.mkdir()
        (handler_dir / "handler.py").write_text(RECORDING)
        port = free_port()
        monkeypatch.setenv("SIDE", name)  # the floor server inherits it
        servers.append(start_floor(handler_dir, port))
        sides.append(
            Side(LeanClient(f"http://127.0.0.1:{port}", sign=False), invoke_path("x"), [[servers[-1].pid]])
        )
    try:
        side_by_side(sides, n=40, rounds=4)
    finally:
        for side in sides:
            side.client.close()
        for server in servers:
            server.terminate()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
    calls = []
    for name in ("a", "b"):
        for line in (tmp_path / name / "calls.log").read_text().splitlines():
            side, ns = line.split()
            calls.append((int(ns), side))
    order = [side for _, side in sorted(calls)]
    assert len(order) == 80
    turns = [order[0]] + [now for before, now in zip(order, order[1:], strict=False) if now != before]
    assert turns == ["a", "b"] * 4  # four rounds, each side ten invokes in a row
    for side in sides:
        assert len(side.samples) == 40
        assert len(side.cpu) == 1 and side.cpu[0] >= 0.0
