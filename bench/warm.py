"""Warm invoke: sequential latency, 32-connection throughput, server CPU per invoke, and a profile."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
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
    start_floor,
)  # fmt: skip
from bench.loadgen import ensure_wrk, run_wrk
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


def run(results: Results, work: Path, server: ServerProcess, n: int, seconds: int) -> Counter[str] | None:
    lam = server.client("lambda")
    deploy(lam, "bench-noop", {"handler.py": NOOP})
    handler_dir = work / "noop"
    handler_dir.mkdir(exist_ok=True)
    (handler_dir / "handler.py").write_text(NOOP)
    floor_port = free_port()
    floor = start_floor(handler_dir, floor_port)
    floor_url = f"http://127.0.0.1:{floor_port}"
    path = invoke_path("bench-noop")
    try:
        lean, bare = LeanClient(server.endpoint), LeanClient(floor_url, sign=False)
        sequential(lean, path, min(200, n))  # warm the environment and the connection
        sequential(bare, path, min(200, n))
        assert server.proc is not None
        pids = [server.proc.pid]
        sandboxes = descendants(server.proc.pid)
        cpu_before, box_before = cpu_of(pids), cpu_of(sandboxes)
        ours = sequential(lean, path, n)
        cpu_server, cpu_boxes = cpu_of(pids) - cpu_before, cpu_of(sandboxes) - box_before
        floor_before = cpu_of([floor.pid])
        base = sequential(bare, path, n)
        cpu_floor = cpu_of([floor.pid]) - floor_before
        lean.close()
        bare.close()
        for pct in (50, 99):
            results.add(Figure(SECTION, f"sequential invoke p{pct} (n={n})", percentile(ours, pct), "ms",
                               percentile(base, pct), "floor server, same client"))  # fmt: skip
        full_cpu(results, lean_endpoint=server.endpoint, lam=lam, n=n, floor=base)
        looped, blocking = hops.measure(n)
        results.add(Figure(SECTION, "one hop: frame round trip via a uvloop loop (p50)", looped, "ms", blocking,
                           "same frames, blocking sockets", "a warm invoke makes two such hops (client to "
                           "server, server to sandbox); the floor server makes one"))  # fmt: skip
        results.add(Figure(SECTION, "client SigV4 signing (not in latency)", signing_cost_ms(server.endpoint, path),
                           "ms", None, "", "botocore SigV4Auth per request; done before the clock starts"))  # fmt: skip
        results.add(Figure(SECTION, "server CPU per invoke (server process)", cpu_server / n * 1000, "ms",
                           cpu_floor / n * 1000, "floor server CPU per request"))  # fmt: skip
        results.add(Figure(SECTION, "sandbox CPU per invoke (agent + handler)", cpu_boxes / n * 1000, "ms",
                           None, "", "utime+stime of the sandbox processes"))  # fmt: skip
        throughput(results, server, floor_url, path, seconds)
        return profile(
            server.proc.pid, max(seconds, 6), work, server.endpoint, presigned_path(server.endpoint, path)
        )
    finally:
        floor.terminate()
        floor.wait()


def full_cpu(results: Results, lean_endpoint: str, lam: object, n: int, floor: list[float]) -> None:
    """The same no-op at 1769 MB, a full vCPU: at 128 MB the sandbox gets 7.2% of a CPU, as on AWS,
    and a client invoking back to back exhausts that quota, which is what the 128 MB p99 shows."""
    deploy(lam, "bench-noop-1769", {"handler.py": NOOP}, memory=1769)
    client = LeanClient(lean_endpoint)
    path = invoke_path("bench-noop-1769")
    sequential(client, path, min(200, n))
    samples = sequential(client, path, n)
    client.close()
    for pct in (50, 99):
        results.add(Figure(SECTION, f"sequential invoke p{pct}, 1769 MB (one vCPU)", percentile(samples, pct),
                           "ms", percentile(floor, pct), "floor server, same client"))  # fmt: skip


def throughput(results: Results, server: ServerProcess, floor_url: str, path: str, seconds: int) -> None:
    if ensure_wrk() is None:
        results.note(SECTION, "wrk is not installed and apt-get could not install it: no throughput figures")
        return
    signed = presigned_path(server.endpoint, path)
    warm_up(server, signed)
    run_wrk(floor_url, path, 1)
    ours = run_wrk(server.endpoint, signed, seconds)
    base = run_wrk(floor_url, path, seconds)
    results.add(Figure(SECTION, "throughput, 32 connections (wrk)", ours.requests_per_s, "req/s",
                       base.requests_per_s, "floor server, same wrk",
                       f"{ours.requests} requests, {ours.non_2xx} non-2xx, socket errors: {ours.errors or 'none'}"))  # fmt: skip
    if ours.latency_p50_ms is not None and base.latency_p50_ms is not None:
        results.add(Figure(SECTION, "latency p50 under 32-connection load", ours.latency_p50_ms, "ms",
                           base.latency_p50_ms, "floor server"))  # fmt: skip


def warm_up(server: ServerProcess, signed: str, rounds: int = 8) -> None:
    """Load until the number of sandboxes stops growing: the figure is the warm throughput.

    The pool starts a bounded number of sandboxes at once and waiting invokes take environments as
    they come back, so 32 connections reach 32 environments only gradually; sandbox starts during
    the measured window would be cold-start work, which the cold section measures.
    """
    assert server.proc is not None
    before = -1
    for _ in range(rounds):
        run_wrk(server.endpoint, signed, 2)
        now = len(descendants(server.proc.pid))
        if now == before:
            return
        before = now


def temp_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="lambdad-bench-"))
