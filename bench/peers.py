"""Peers on this machine with the same no-op handler: serverless-offline, python-lambda-local."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.common import (
    NOOP,
    Figure,
    LeanClient,
    Results,
    ServerProcess,
    deploy,
    descendants,
    invoke_path,
    percentile,
    presigned_path,
    start_server,
)  # fmt: skip
from bench.loadgen import alternate_wrk, ensure_wrk
from bench.warm import Side, sequential, side_by_side, warm_up
from tests.serverproc import free_port

SECTION = "peers"
PEERS = Path(__file__).parent / ".peers"
SLS_PACKAGES = ["serverless@3", "serverless-offline@13"]  # serverless v4 needs a login; v3 runs offline
SLS_YML = """service: bench
frameworkVersion: "3"
provider: {{name: aws, runtime: python3.11, region: us-east-1}}
plugins: [serverless-offline]
functions: {{noop: {{handler: handler.handler}}}}
custom:
  serverless-offline: {{host: 127.0.0.1, lambdaPort: {port}, httpPort: {p1}, websocketPort: {p2}, albPort: {p3}}}
"""


def keep_out_of_git() -> None:
    """bench/.peers holds installed tools: invisible to git and ruff through its own .gitignore."""
    PEERS.mkdir(exist_ok=True)
    (PEERS / ".gitignore").write_text("*\n")


def install_sls() -> Path | None:
    """serverless v3 + serverless-offline, installed once with npm under bench/.peers/sls."""
    keep_out_of_git()
    home = PEERS / "sls"
    if not (home / "node_modules/.bin/serverless").exists():
        if shutil.which("npm") is None:
            return None
        home.mkdir(parents=True, exist_ok=True)
        (home / "package.json").write_text(json.dumps({"name": "bench-peers", "private": True}))
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", *SLS_PACKAGES], cwd=home,
                       capture_output=True, check=False)  # fmt: skip
    return home if (home / "node_modules/.bin/serverless").exists() else None


def install_plocal() -> Path | None:
    """python-lambda-local (PyPI) in its own venv under bench/.peers/pyvenv."""
    keep_out_of_git()
    venv = PEERS / "pyvenv"
    tool = venv / "bin/python-lambda-local"
    if not tool.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], capture_output=True, check=False)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "python-lambda-local"], capture_output=True)
    return tool if tool.exists() else None


def run(results: Results, work: Path, n: int, seconds: int) -> None:
    results.note(
        SECTION, "AWS Lambda's published Python cold start, 50-200 ms, is the reference line in 'cold'."
    )
    # lambdad runs beside each peer, taking turns with it, so a peer's figures and lambdad's are
    # compared at the same moment on this drifting machine (the peer's ratio is peer / lambdad).
    server = start_server(work / "peers-lambdad")
    try:
        deploy(server.client("lambda"), "bench-noop", {"handler.py": NOOP})
        serverless_offline(results, work, n, seconds, server)
    finally:
        server.stop()
    python_lambda_local(results, work)
    results.note(SECTION, "LocalStack, moto's Lambda and AWS SAM `sam local` run handlers in Docker "
                 "containers; there is no Docker here (and no nested containers), so they were not measured.")  # fmt: skip


def serverless_offline(results: Results, work: Path, n: int, seconds: int, lambdad: ServerProcess) -> None:
    home = install_sls()
    if home is None:
        results.note(SECTION, "serverless-offline could not be installed with npm: not measured")
        return
    project = work / "sls"
    project.mkdir(exist_ok=True)
    (project / "handler.py").write_text(NOOP)
    port = free_port()
    (project / "serverless.yml").write_text(
        SLS_YML.format(port=port, p1=free_port(), p2=free_port(), p3=free_port())
    )
    (project / "node_modules").symlink_to(home / "node_modules")
    env = dict(os.environ, SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off")
    log = open(work / "sls.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(home / "node_modules/.bin/serverless"), "offline", "start"], cwd=project,
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    try:
        if not wait_listening(work / "sls.log", 60):
            results.note(
                SECTION, f"serverless-offline did not start: {(work / 'sls.log').read_text()[-500:]}"
            )
            return
        measure_http_peer(results, "serverless-offline 13 (serverless 3)", f"http://127.0.0.1:{port}",
                          "/2015-03-31/functions/bench-dev-noop/invocations", proc.pid, n, seconds, lambdad)  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        log.close()


def wait_listening(log: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "listening on" in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def measure_http_peer(
    results: Results,
    label: str,
    endpoint: str,
    path: str,
    pid: int,
    n: int,
    seconds: int,
    lambdad: ServerProcess,
) -> None:
    client = LeanClient(endpoint)  # signed like lambdad's requests, so the client does the same work
    first, status, _ = client.timed_post(path, b"{}", {"Content-Type": "application/json"})
    if status != 200:
        results.note(SECTION, f"{label}: invoke answered {status}; not measured")
        return
    results.add(
        Figure(SECTION, f"{label}: first invoke", first * 1000, "ms", None, "", "compare with 'cold'")
    )
    ours_path = invoke_path("bench-noop")
    peer = Side(client, path, [[pid, *descendants(pid)]])
    ours = Side(LeanClient(lambdad.endpoint), ours_path)
    sequential(ours.client, ours.path, min(200, n))  # warm lambdad's environment and connection
    side_by_side([peer, ours], n)
    beside = "lambdad, same client, alternating rounds"
    for pct in (50, 99):
        results.add(Figure(SECTION, f"{label}: sequential invoke p{pct} (n={n})", percentile(peer.samples, pct), "ms",
                           percentile(ours.samples, pct), beside))  # fmt: skip
    cpu = peer.cpu[0] / len(peer.samples) * 1000
    results.add(Figure(SECTION, f"{label}: CPU per invoke (all its processes)", cpu, "ms"))
    client.close()
    ours.client.close()
    if ensure_wrk():
        assert lambdad.proc is not None
        signed = presigned_path(lambdad.endpoint, ours_path)
        warm_up(lambdad.endpoint, signed, lambdad.proc.pid)
        warm_up(endpoint, path, pid)  # serverless-offline also starts a process per concurrent request
        load, mine = alternate_wrk([(endpoint, path), (lambdad.endpoint, signed)], seconds)
        results.add(Figure(SECTION, f"{label}: throughput, 32 connections (wrk)", load.requests_per_s, "req/s",
                           mine.requests_per_s, "lambdad, same wrk, alternating rounds", f"{load.requests} requests, "
                           f"{load.non_2xx} non-2xx, socket errors: {load.errors or 'none'}"))  # fmt: skip


def python_lambda_local(results: Results, work: Path, runs: int = 20) -> None:
    """python-lambda-local has no server: each invoke is a new process, so its latency is a cold start."""
    tool = install_plocal()
    if tool is None:
        results.note(SECTION, "python-lambda-local could not be installed from PyPI: not measured")
        return
    folder = work / "plocal"
    folder.mkdir(exist_ok=True)
    (folder / "handler.py").write_text(NOOP)
    (folder / "event.json").write_text("{}")
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(tool), "-f", "handler", "handler.py", "event.json"], cwd=folder,
                       capture_output=True, check=True)  # fmt: skip
        samples.append((time.perf_counter() - start) * 1000)
    results.add(Figure(SECTION, "python-lambda-local: one invoke (a new process each)", percentile(samples, 50),
                       "ms", None, "", f"median of {runs}; no HTTP API, no warm path, no isolation"))  # fmt: skip
