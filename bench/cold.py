"""Cold start: first invoke of fresh functions against starting a bare Python; a heavy-import handler."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import NOOP, Figure, LeanClient, Results, ServerProcess, deploy, invoke_path, percentile

SECTION = "cold"


def python_pass_ms(runs: int = 20) -> tuple[float, str]:
    """Median wall time of ``python3 -c pass`` (hyperfine-style: one warm-up, then ``runs`` runs)."""
    # the system interpreter the sandboxes run, not a PATH shim (pyenv's is a shell script)
    python = (
        "/usr/bin/python3" if Path("/usr/bin/python3").exists() else (shutil.which("python3") or "python3")
    )
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        if i:
            samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50), python


def big_module(target_kib: int = 300) -> str:
    """Source of a module of many small functions, about ``target_kib`` KiB."""
    parts = []
    i = 0
    while sum(map(len, parts)) < target_kib * 1024:
        parts.append(
            f"def f{i}(x, y=1):\n    z = [x * {i} + y for _ in range(3)]\n"
            f"    return {{'n': {i}, 'z': z, 's': 'value-{i}'}}\n\n\n"
        )
        i += 1
    return "".join(parts)


def first_invoke(client: LeanClient, name: str) -> float:
    """Wall ms of a function's first invoke (the connection is already open)."""
    seconds, status, _ = client.timed_post(invoke_path(name), b"{}", {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"cold invoke of {name} answered {status}")
    return seconds * 1000


def report_init_ms(lam: object, name: str) -> tuple[float, float | None]:
    """Invoke through boto3 with LogType=Tail and read Init Duration from the REPORT line."""
    start = time.perf_counter()
    answer = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")  # type: ignore[attr-defined]
    wall = (time.perf_counter() - start) * 1000
    tail = base64.b64decode(answer.get("LogResult", "")).decode(errors="replace")
    found = re.search(r"Init Duration: ([\d.]+) ms", tail)
    return wall, float(found.group(1)) if found else None


def run(results: Results, work: Path, server: ServerProcess, n: int) -> None:
    lam = server.client("lambda")
    names = [f"bench-cold-{i}" for i in range(n)]
    for name in names:
        deploy(lam, name, {"handler.py": NOOP})
    floor_ms, python = python_pass_ms()
    client = LeanClient(server.endpoint)
    client.timed_post("/2015-03-31/functions", b"", {})  # open the connection outside the clock
    walls = [first_invoke(client, name) for name in names]
    for pct in (50, 99):
        results.add(Figure(SECTION, f"first invoke of a fresh function p{pct} (n={n})", percentile(walls, pct),
                           "ms", floor_ms, f"`{python} -c pass`, median of 20"))  # fmt: skip
    results.add(Figure(SECTION, "AWS Lambda published Python cold start", 50.0, "ms", floor_ms,
                       f"`{python} -c pass`", "reference line: AWS quotes 50-200 ms; lower bound shown"))  # fmt: skip
    heavy(results, work, server, floor_ms, python)


def heavy(results: Results, work: Path, server: ServerProcess, floor_ms: float, python: str) -> None:
    """A handler importing ~300 KiB of source: where init time goes, in the sandbox and on the host."""
    lam = server.client("lambda")
    source = big_module()
    handler = "import bigmod\n\n\ndef handler(event, context):\n    return {'n': bigmod.f1(1)['n']}\n"
    deploy(lam, "bench-heavy", {"handler.py": handler, "bigmod.py": source})
    wall, init = report_init_ms(lam, "bench-heavy")
    deploy(lam, "bench-noop-tail", {"handler.py": NOOP})
    noop_wall, noop_init = report_init_ms(lam, "bench-noop-tail")
    host_dir = work / "heavy"
    host_dir.mkdir(exist_ok=True)
    (host_dir / "bigmod.py").write_text(source)
    start = time.perf_counter()
    subprocess.run([python, "-B", "-c", "import bigmod"], cwd=host_dir, check=True)
    host_import = (time.perf_counter() - start) * 1000
    kib = len(source) / 1024
    results.add(Figure(SECTION, f"heavy handler ({kib:.0f} KiB module): first invoke", wall, "ms",
                       host_import, f"`{python} -B -c 'import bigmod'` on the host"))  # fmt: skip
    results.add(Figure(SECTION, "heavy handler: Init Duration (REPORT line)", init, "ms", noop_init,
                       "Init Duration of the no-op handler"))  # fmt: skip
    results.add(Figure(SECTION, "no-op handler: first invoke (boto3, LogType=Tail)", noop_wall, "ms", floor_ms,
                       f"`{python} -c pass`"))  # fmt: skip
