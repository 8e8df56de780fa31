"""Shared pieces of the benchmarks: statistics, a lean SigV4 client, process CPU and memory readers."""

from __future__ import annotations

import datetime
import http.client
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdad import compiled
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, make_zip

__all__ = ["ServerProcess", "make_zip"]

ROLE = "arn:aws:iam::000000000000:role/bench"
NOOP = "def handler(event, context):\n    return {}\n"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figure:
    """One measured number next to its floor, as the report prints it."""

    section: str
    name: str
    value: float | None
    unit: str
    floor: float | None = None
    floor_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        floor = (
            f"{fmt(figure.floor)} {figure.unit} ({figure.floor_name})" if figure.floor is not None else "-"
        )
        print(f"  {figure.name:<44} {fmt(figure.value):>10} {figure.unit:<8} floor {floor:<40} ratio {ratio}")

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)
        print(f"  note: {text}")


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> dict[str, str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "lambdad commit": _git_head(),
        "compiled hot path (mypyc)": compiled.state,
    }


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain", "lambdad"], capture_output=True, text=True)
        return out.stdout.strip() + (" (+ uncommitted changes in lambdad/)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def invoke_path(function: str) -> str:
    return f"/2015-03-31/functions/{function}/invocations"


def signed_headers(
    endpoint: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> dict[str, str]:
    """SigV4 header signing of one request, exactly as botocore does it for boto3."""
    request = AWSRequest(method="POST", url=endpoint + path, data=body, headers=headers or {})
    SigV4Auth(CREDENTIALS, "lambda", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items()}


def presigned_path(endpoint: str, path: str, body: bytes = b"{}", expires: int = 3600) -> str:
    """A SigV4 query-string presigned POST with UNSIGNED-PAYLOAD, replayable until it expires.
    (botocore's plain SigV4QueryAuth, which signs the payload's sha256, is refused by lambdad with
    SignatureDoesNotMatch; the S3-style presigner is accepted.)"""
    request = AWSRequest(method="POST", url=endpoint + path, data=body)
    S3SigV4QueryAuth(CREDENTIALS, "lambda", REGION, expires=expires).add_auth(request)
    parts = urlsplit(request.url)
    return f"{parts.path}?{parts.query}"


class LeanClient:
    """One persistent HTTP/1.1 connection; each request is signed before the clock starts."""

    def __init__(self, endpoint: str, sign: bool = True) -> None:
        self.endpoint = endpoint
        host = urlsplit(endpoint)
        self.conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=300)
        self.sign = sign

    def prepare(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> dict[str, str]:
        if self.sign:
            return signed_headers(self.endpoint, path, body, headers)
        return dict(headers or {})

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("POST", path, body=body, headers=headers)
        answer = self.conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()

    def timed_post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[float, int, bytes]:
        """Seconds from send to the last byte read, the status, and the body."""
        prepared = self.prepare(path, body, headers)
        start = time.perf_counter()
        status, _, data = self.post(path, body, prepared)
        return time.perf_counter() - start, status, data

    def close(self) -> None:
        self.conn.close()


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of one process (all its threads), or of one of its threads, from /proc."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc/*/stat parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def server_and_sandboxes(pid: int) -> tuple[list[int], list[int]]:
    """The server's own processes (itself and its log writer) and everything else below it (the
    sandboxes), so that CPU figures charge the log writer to the server, where it belongs."""
    own: list[int] = [pid]
    sandboxes: list[int] = []
    for child in descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        (own if b"lambdad.observe.logwriter" in argv else sandboxes).append(child)
    return own, sandboxes


def sandbox_groups(server_pid: int) -> dict[str, list[int]]:
    """Sandbox id -> pids, from the server's per-sandbox memory (v1) or unified (v2) cgroups."""
    own = Path(f"/proc/{server_pid}/cgroup").read_text().splitlines()
    paths = {parts[1]: parts[2] for parts in (line.split(":", 2) for line in own)}
    if "memory" in paths:
        base = Path("/sys/fs/cgroup/memory") / paths["memory"].lstrip("/")
    else:
        base = Path("/sys/fs/cgroup") / paths.get("", "/").lstrip("/")
    # on v2 the server itself sits in a 'lambdad-server' leaf next to 'lambdad'
    candidates = [base / "lambdad", base.parent / "lambdad"]
    groups: dict[str, list[int]] = {}
    for root in candidates:
        if root.is_dir():
            for group in root.iterdir():
                procs = group / "cgroup.procs"
                if group.is_dir() and procs.exists():
                    pids = [int(p) for p in procs.read_text().split()]
                    if pids:
                        groups[group.name] = pids
            break
    return groups


def deploy(
    lam: object, name: str, files: dict[str, str | bytes], timeout: int = 60, memory: int = 128,
    runtime: str = "python3.11", handler: str = "handler.handler",
) -> None:  # fmt: skip
    """Create a function (Python 3.11 unless told) and wait until it is Active."""
    lam.create_function(  # type: ignore[attr-defined]
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
        Code={"ZipFile": make_zip(files)}, Timeout=timeout, MemorySize=memory,
    )  # fmt: skip
    lam.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
        FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )


def start_server(root: Path, args: list[str] | None = None) -> ServerProcess:
    return ServerProcess(root / "data", extra_args=args or []).start()


def start_floor(handler_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.floor_server", str(port), str(handler_dir)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready"
    return proc
