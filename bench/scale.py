"""Scale: N concurrent invokes of a 2 s handler, and the memory (PSS) of an idle warm environment."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from bench.common import (
    Figure,
    Results,
    ServerProcess,
    deploy,
    invoke_path,
    percentile,
    pss_kib,
    sandbox_groups,
    signed_headers,
)  # fmt: skip
from bench.loadgen import burst

SECTION = "scale"
SLEEPER = "import time\n\n\ndef handler(event, context):\n    time.sleep(2)\n    return {}\n"
FIRECRACKER_MIB = 5.0


def run(results: Results, work: Path, server: ServerProcess, sizes: list[int]) -> None:
    lam = server.client("lambda")
    for n in sizes:
        name = f"bench-sleep-{n}"
        deploy(lam, name, {"handler.py": SLEEPER}, timeout=300)
        path = invoke_path(name)
        body = b"{}"
        requests = [(path, signed_headers(server.endpoint, path, body), body) for _ in range(n)]
        outcome = asyncio.run(burst(server.endpoint, requests))
        ok = outcome.statuses.get("200", 0)
        seen = ", ".join(f"{k}: {v}" for k, v in outcome.statuses.most_common())
        results.add(Figure(SECTION, f"burst of {n} concurrent 2 s invokes: succeeded", ok, "of " + str(n),
                           float(n), "all of them", f"outcomes: {seen}"))  # fmt: skip
        results.add(Figure(SECTION, f"burst of {n}: wall time of the whole burst", outcome.seconds, "s", 2.0,
                           "the handler's own 2 s"))  # fmt: skip
        for pct in (50, 99):
            results.add(Figure(SECTION, f"burst of {n}: invoke latency p{pct}", percentile(outcome.latencies, pct),
                               "s", 2.0, "the handler's own 2 s"))  # fmt: skip
        memory(results, server, n)


def memory(results: Results, server: ServerProcess, n: int) -> None:
    """PSS of every idle environment: the sum over the processes in its sandbox cgroup."""
    assert server.proc is not None
    groups = sandbox_groups(server.proc.pid)
    per_env = [sum(pss_kib(pid) for pid in pids) / 1024 for pids in groups.values()]
    if not per_env:
        results.note(SECTION, "no sandbox cgroups found: PSS per environment not measured")
        return
    procs = statistics.median(len(p) for p in groups.values())
    results.add(Figure(SECTION, f"PSS per idle warm environment ({len(per_env)} live, after burst of {n})",
                       statistics.median(per_env), "MiB", FIRECRACKER_MIB, "Firecracker's published < 5 MiB",
                       f"median of {len(per_env)} sandboxes, {procs:.0f} processes each; "
                       f"max {max(per_env):.2f} MiB"))  # fmt: skip
