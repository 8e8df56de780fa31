"""A/B of lambdad's code under wrk: servers of two or more commits take turns, round after round.

This machine's speed drifts by half within an hour, so two runs made one after the other compare
the drift, not the code. Here each round runs every server for a few seconds, in alternating
order, and the totals are compared. Besides req/s it reports the CPU per request of the server's
busiest threads (the event loop's first) and of its child processes (sandboxes, log writer).

    python -m bench.ab HEAD~1 HEAD             # two commits
    python -m bench.ab --rounds 10 main WORK   # WORK: the working tree as it is
    python -m bench.ab PURE WORK               # PURE: the working tree without its compiled modules

A commit's tree holds no compiled modules (lambdad/compiled.py), so it runs its Python sources
unless ``--compile`` builds them first (a minute or two per commit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import NOOP, cpu_seconds, deploy, descendants, invoke_path, presigned_path
from bench.loadgen import WrkResult, _combined, ensure_wrk, run_wrk
from bench.warm import cpu_of, warm_up
from lambdad.compiled import PURE_ENV
from tests.serverproc import ServerProcess

REPO = Path(__file__).resolve().parents[1]


def export(rev: str, into: Path) -> Path:
    """A directory holding ``lambdad`` as of ``rev`` (WORK, PURE: the working tree), for PYTHONPATH."""
    if rev in ("WORK", "PURE"):
        return REPO
    target = into / rev.replace("/", "_")
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "lambdad"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def compile_tree(tree: Path) -> None:
    """Build an exported commit's compiled hot path, as its ``make setup`` would."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", "lambdad.compiler"], cwd=tree, env=env, check=True)


def _environment(rev: str, tree: Path) -> dict[str, str]:
    env = {"PYTHONPATH": str(tree)}
    if rev == "PURE":
        env[PURE_ENV] = "1"
    return env


def _pid(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def _threads(pid: int) -> dict[int, float]:
    """CPU seconds of each of ``pid``'s threads."""
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            out[int(task)] = cpu_seconds(pid, int(task))
    return out


def _per_request(seconds: float, requests: int) -> str:
    return f"{seconds / requests * 1e6:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revs", nargs="+", help="commits to compare (WORK for the working tree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3, help="wrk's run per server per round")
    parser.add_argument("--compile", action="store_true", help="build each commit's compiled modules")
    args = parser.parse_args()
    if ensure_wrk() is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="lambdad-ab-") as tmp:
        root = Path(tmp)
        trees = [export(rev, root / "trees") for rev in args.revs]
        if args.compile:
            for tree in trees:
                if tree != REPO:
                    compile_tree(tree)
        os.chdir(root)  # `python -m lambdad` looks in the working directory before PYTHONPATH
        servers = [
            ServerProcess(root / str(i) / "data", env=_environment(rev, tree)).start()
            for i, (rev, tree) in enumerate(zip(args.revs, trees, strict=True))
        ]
        try:
            paths = []
            for server in servers:
                deploy(server.client("lambda"), "noop", {"handler.py": NOOP})
                path = presigned_path(server.endpoint, invoke_path("noop"))
                warm_up(server.endpoint, path, _pid(server))
                paths.append(path)
            runs: list[list[WrkResult]] = [[] for _ in servers]
            thread_cpu: list[dict[int, float]] = [{} for _ in servers]
            child_cpu = [0.0 for _ in servers]
            for r in range(args.rounds):
                order = list(range(len(servers)))
                if r % 2:
                    order.reverse()
                for i in order:
                    pid = _pid(servers[i])
                    children = descendants(pid)
                    before, children_before = _threads(pid), cpu_of(children)
                    runs[i].append(run_wrk(servers[i].endpoint, paths[i], args.seconds))
                    child_cpu[i] += cpu_of(children) - children_before
                    for task, spent in _threads(pid).items():
                        thread_cpu[i][task] = thread_cpu[i].get(task, 0.0) + spent - before.get(task, spent)
            for rev, result, threads, in_children in zip(args.revs, runs, thread_cpu, child_cpu, strict=True):
                total = _combined(result)
                n = sum(run.requests for run in result) or 1
                busiest = ", ".join(_per_request(t, n) for t in sorted(threads.values(), reverse=True)[:2])
                rounds = " ".join(f"{run.requests_per_s:.0f}" for run in result)
                print(f"{rev}: {total.requests_per_s:,.0f} req/s [{rounds}]; "
                      f"server threads {busiest} us/req; child processes {_per_request(in_children, n)} us/req")  # fmt: skip
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
