"""Warm invoke: sequential latency, 32-connection throughput, server CPU per invoke, and a profile."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import hops
from bench.common import (
    NOOP,
    Figure,
    LeanClient,
    Results,
    ServerProcess,
    cpu_seconds,
    deploy,
    descendants,
    invoke_path,
    percentile,
    presigned_path,
    server_and_sandboxes,
    start_floor,
)  # fmt: skip
from bench.loadgen import alternate_wrk, ensure_wrk, run_wrk
from tests.serverproc import free_port

SECTION = "warm"
BODY = b"{}"


def sequential(client: LeanClient, path: str, n: int) -> list[float]:
    """Latencies (ms) of n sequential invokes; a non-200 answer stops the run loudly."""
    samples = []
    for _ in range(n):
        seconds, status, data = client.timed_post(path, BODY, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"invoke answered {status}: {data[:300]!r}")
        samples.append(seconds * 1000)
    return samples


def signing_cost_ms(endpoint: str, path: str, n: int = 500) -> float:
    client = LeanClient(endpoint)
    start = time.perf_counter()
    for _ in range(n):
        client.prepare(path, BODY, {"Content-Type": "application/json"})
    return (time.perf_counter() - start) * 1000 / n


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def profile(pid: int, seconds: int, out: Path, endpoint: str, path: str) -> Counter[str] | None:
    """py-spy samples of the server under wrk load: leaf ("self") counts per function."""
    spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    raw = out / "warm-profile.txt"
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)
    run_wrk(endpoint, path, seconds - 1)
    recorder.wait(timeout=120)
    if not raw.exists():
        return None
    return summarize_profile(raw.read_text())


def summarize_profile(raw: str) -> Counter[str]:
    """Collapsed stacks ('a;b;c count') -> samples per leaf frame, plus 'inclusive:' counts per frame."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]
        counts["total"] += int(count)
        counts["self:" + frames[-1]] += int(count)
        for frame in set(frames):
            counts["inclusive:" + frame] += int(count)
    return counts


ROUNDS = 5  # sequential runs and wrk runs alternate between lambdad and its floor this many times


@dataclass
class Side:
    """One server under a sequential client posting to ``path``; ``processes`` are the pid groups
    whose CPU is charged to it (the server, its sandboxes)."""

    client: LeanClient
    path: str
    processes: list[list[int]] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def side_by_side(sides: list[Side], n: int, rounds: int = ROUNDS) -> None:
    """n sequential invokes per side, in ``rounds`` turns, so that a shared machine's drift falls on
    every side alike; each side's latencies and CPU seconds (per pid group) over its own turns."""
    per = max(1, n // rounds)
    for side in sides:
        side.cpu = [0.0] * len(side.processes)
    for _ in range(rounds):
        for side in sides:
            before = [cpu_of(group) for group in side.processes]
            side.samples += sequential(side.client, side.path, per)
            for i, group in enumerate(side.processes):
                side.cpu[i] += cpu_of(group) - before[i]


def run(results: Results, work: Path, server: ServerProcess, n: int, seconds: int) -> Counter[str] | None:
    lam = server.client("lambda")
    deploy(lam, "bench-noop", {"handler.py": NOOP})
    # The same no-op at 1769 MB, a full vCPU: at 128 MB the sandbox gets 7.2% of a CPU, as on AWS, and
    # a client invoking back to back exhausts that quota, which is what the 128 MB p99 shows.
    deploy(lam, "bench-noop-1769", {"handler.py": NOOP}, memory=1769)
    handler_dir = work / "noop"
    handler_dir.mkdir(exist_ok=True)
    (handler_dir / "handler.py").write_text(NOOP)
    floor_port = free_port()
    floor = start_floor(handler_dir, floor_port)
    floor_url = f"http://127.0.0.1:{floor_port}"
    path = invoke_path("bench-noop")
    try:
        assert server.proc is not None
        ours = Side(LeanClient(server.endpoint), path)
        full = Side(LeanClient(server.endpoint), invoke_path("bench-noop-1769"))
        base = Side(LeanClient(floor_url, sign=False), path, [[floor.pid]])
        for side in (ours, full, base):
            sequential(side.client, side.path, min(200, n))  # warm the environments and the connections
        ours.processes = list(server_and_sandboxes(server.proc.pid))
        side_by_side([ours, full, base], n)
        for side in (ours, base, full):
            side.client.close()
        for pct in (50, 99):
            results.add(Figure(SECTION, f"sequential invoke p{pct} (n={n})", percentile(ours.samples, pct), "ms",
                               percentile(base.samples, pct), f"floor server, same client, {ROUNDS} alternating rounds"))  # fmt: skip
        for pct in (50, 99):
            results.add(Figure(SECTION, f"sequential invoke p{pct}, 1769 MB (one vCPU)", percentile(full.samples, pct),
                               "ms", percentile(base.samples, pct), f"floor server, same client, {ROUNDS} alternating rounds"))  # fmt: skip
        node(results, server, floor_url, n // 4)
        looped, blocking = hops.measure(n)
        results.add(Figure(SECTION, "one hop: frame round trip via a uvloop loop (p50)", looped, "ms", blocking,
                           "same frames, blocking pipes", "a warm invoke makes two such hops (client to "
                           "server, server to sandbox); the floor server makes one"))  # fmt: skip
        results.add(Figure(SECTION, "client SigV4 signing (not in latency)", signing_cost_ms(server.endpoint, path),
                           "ms", None, "", "botocore SigV4Auth per request; done before the clock starts"))  # fmt: skip
        done = len(ours.samples)
        results.add(Figure(SECTION, "server CPU per invoke (server process and its log writer)", ours.cpu[0] / done * 1000, "ms",
                           base.cpu[0] / len(base.samples) * 1000, "floor server CPU per request"))  # fmt: skip
        results.add(Figure(SECTION, "sandbox CPU per invoke (agent + handler)", ours.cpu[1] / done * 1000, "ms",
                           None, "", "utime+stime of the sandbox processes"))  # fmt: skip
        throughput(results, server, floor_url, path, seconds)
        return profile(
            server.proc.pid, max(seconds, 6), work, server.endpoint, presigned_path(server.endpoint, path)
        )
    finally:
        floor.terminate()
        floor.wait()


NODE_NOOP = "export const handler = async () => ({});\n"


def node(results: Results, server: ServerProcess, floor_url: str, n: int) -> None:
    """A Node.js no-op: its runtime is a separate process that speaks the Runtime API (HTTP) to the
    agent, as on AWS, so this is the Runtime API's own cost. 1769 MB: the runtime's CPU per invoke
    is far above 128 MB's share, which would measure throttling instead."""
    if shutil.which("node") is None:
        results.note(SECTION, "node is not installed: no nodejs20.x figures")
        return
    lam = server.client("lambda")
    deploy(lam, "bench-noop-node", {"index.mjs": NODE_NOOP}, memory=1769, runtime="nodejs20.x",
           handler="index.handler")  # fmt: skip
    ours = Side(LeanClient(server.endpoint), invoke_path("bench-noop-node"))
    base = Side(LeanClient(floor_url, sign=False), invoke_path("bench-noop"))
    for side in (ours, base):
        sequential(side.client, side.path, min(100, n))
    side_by_side([ours, base], n)
    for side in (ours, base):
        side.client.close()
    for pct in (50, 99):
        results.add(Figure(SECTION, f"sequential invoke p{pct}, nodejs20.x, 1769 MB (n={n})",
                           percentile(ours.samples, pct), "ms", percentile(base.samples, pct),
                           f"floor server (Python handler), same client, {ROUNDS} alternating rounds"))  # fmt: skip


def throughput(results: Results, server: ServerProcess, floor_url: str, path: str, seconds: int) -> None:
    if ensure_wrk() is None:
        results.note(SECTION, "wrk is not installed and apt-get could not install it: no throughput figures")
        return
    assert server.proc is not None
    signed = presigned_path(server.endpoint, path)
    warm_up(server.endpoint, signed, server.proc.pid)
    run_wrk(floor_url, path, 1)
    ours, base = alternate_wrk([(server.endpoint, signed), (floor_url, path)], seconds)
    results.add(Figure(SECTION, "throughput, 32 connections (wrk)", ours.requests_per_s, "req/s",
                       base.requests_per_s, "floor server, same wrk, alternating rounds",
                       f"{ours.requests} requests, {ours.non_2xx} non-2xx, socket errors: {ours.errors or 'none'}"))  # fmt: skip
    if ours.latency_p50_ms is not None and base.latency_p50_ms is not None:
        results.add(Figure(SECTION, "latency p50 under 32-connection load", ours.latency_p50_ms, "ms",
                           base.latency_p50_ms, "floor server"))  # fmt: skip


def warm_up(endpoint: str, path: str, pid: int, rounds: int = 8) -> None:
    """Load until the number of ``pid``'s descendants (sandboxes, workers) stops growing: the
    figure is the warm throughput.

    The pool starts a bounded number of sandboxes at once and waiting invokes take environments as
    they come back, so 32 connections reach 32 environments only gradually; sandbox starts during
    the measured window would be cold-start work, which the cold section measures.
    """
    before = -1
    for _ in range(rounds):
        run_wrk(endpoint, path, 2)
        now = len(descendants(pid))
        if now == before:
            return
        before = now


def temp_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="lambdad-bench-"))
