"""Load generators: wrk with a pre-signed request, and a small asyncio client for bursts."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

WRK_SCRIPT = """wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
"""


def ensure_wrk() -> str | None:
    """The wrk binary, installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False)
        found = shutil.which("wrk")
    return found


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    errors: str
    latency_p50_ms: float | None


def run_wrk(endpoint: str, path: str, seconds: int, connections: int = 32, threads: int = 2) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", script.name, endpoint + path],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    p50_ms = None
    if p50:
        p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return WrkResult(
        rps, total, int(non_2xx.group(1)) if non_2xx else 0, errors.group(1) if errors else "", p50_ms
    )


def alternate_wrk(targets: list[tuple[str, str]], seconds: int, rounds: int = 3) -> list[WrkResult]:
    """wrk against each (endpoint, path) in turn, ``rounds`` times, about seconds/rounds each; one
    result per target over all its rounds. Taking turns spreads a shared machine's drift over
    every target alike, where back-to-back runs would hand it all to whichever ran in a slow spell."""
    per = max(1, seconds // rounds)
    runs: list[list[WrkResult]] = [[] for _ in targets]
    for _ in range(rounds):
        for (endpoint, path), done in zip(targets, runs, strict=True):
            done.append(run_wrk(endpoint, path, per))
    return [_combined(done) for done in runs]


def _combined(runs: list[WrkResult]) -> WrkResult:
    """Rounds of equal length: the mean rate, the summed counts, the median of the round p50s."""
    p50s = sorted(r.latency_p50_ms for r in runs if r.latency_p50_ms is not None)
    errors = sorted({r.errors for r in runs if r.errors})
    return WrkResult(
        sum(r.requests_per_s for r in runs) / len(runs),
        sum(r.requests for r in runs),
        sum(r.non_2xx for r in runs),
        "; ".join(errors),
        p50s[len(p50s) // 2] if p50s else None,
    )


@dataclass
class Burst:
    seconds: float
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


async def one_request(endpoint: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, float]:
    """One POST on its own connection; the outcome ('200', '429 TooManyRequestsException', or the
    exception's name) and the seconds it took."""
    parts = urlsplit(endpoint)
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(
            f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in ("host", "content-length")
        )
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        data = await reader.read()
        writer.close()
    except (OSError, asyncio.IncompleteReadError) as e:
        return type(e).__name__, time.perf_counter() - start
    status_line, _, rest = data.partition(b"\r\n")
    status = status_line.split(b" ")[1].decode() if status_line else "empty"
    outcome = status
    heads, _, payload = rest.partition(b"\r\n\r\n")
    function_error = re.search(rb"(?i)x-amz-function-error: (\S+)", heads)
    if function_error:
        outcome += " FunctionError:" + re.sub(rb'.*"errorType": ?"([^"]+)".*', rb"\1", payload[:500]).decode()
    elif status != "200":
        kind = re.search(rb"(?i)x-amzn-errortype: ([^\r:]+)", heads)
        outcome += " " + (kind.group(1).decode() if kind else payload[:120].decode(errors="replace"))
    return outcome, time.perf_counter() - start


async def burst(endpoint: str, requests: list[tuple[str, dict[str, str], bytes]]) -> Burst:
    """Send every request at once, each on its own connection; wait for all."""
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one_request(endpoint, p, h, b) for p, h, b in requests))
    result = Burst(time.perf_counter() - start)
    for outcome, seconds in outcomes:
        result.statuses[outcome] += 1
        result.latencies.append(seconds)
    return result
