"""A/B of lambdad's code under wrk: servers of two or more commits take turns, round after round.

This machine's speed drifts by half within an hour, so two runs made one after the other compare
the drift, not the code. Here each round runs every server for a few seconds, in alternating
order, and the totals are compared. Besides req/s it reports the CPU per request of the server's
busiest threads (the event loop's first) and of its child processes (sandboxes, log writer).

    python -m bench.ab HEAD~1 HEAD             # two commits
    python -m bench.ab --rounds 10 main WORK   # WORK: the working tree as it is
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from bench.common import NOOP, deploy, descendants, invoke_path, presigned_path
from bench.loadgen import WrkResult, _combined, ensure_wrk, run_wrk
from bench.warm import warm_up
from tests.serverproc import ServerProcess

REPO = Path(__file__).resolve().parents[1]


def export(rev: str, into: Path) -> Path:
    """A directory holding ``lambdad`` as of ``rev`` (WORK: the working tree), for PYTHONPATH."""
    if rev == "WORK":
        return REPO
    target = into / rev.replace("/", "_")
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "lambdad"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _pid(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def _ticks(pid: int, task: str | None = None) -> int:
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _per(ticks: int, tick: int, requests: int) -> str:
    return f"{ticks / tick / requests * 1e6:.0f}"


def _threads(pid: int) -> dict[str, int]:
    return {task: _ticks(pid, task) for task in os.listdir(f"/proc/{pid}/task")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revs", nargs="+", help="commits to compare (WORK for the working tree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3, help="wrk's run per server per round")
    args = parser.parse_args()
    if ensure_wrk() is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tick = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory(prefix="lambdad-ab-") as tmp:
        root = Path(tmp)
        trees = [export(rev, root / "trees") for rev in args.revs]
        os.chdir(root)  # `python -m lambdad` looks in the working directory before PYTHONPATH
        servers = [
            ServerProcess(root / str(i) / "data", env={"PYTHONPATH": str(tree)}).start()
            for i, tree in enumerate(trees)
        ]
        try:
            paths = []
            for server in servers:
                deploy(server.client("lambda"), "noop", {"handler.py": NOOP})
                path = presigned_path(server.endpoint, invoke_path("noop"))
                warm_up(server.endpoint, path, _pid(server))
                paths.append(path)
            runs: list[list[WrkResult]] = [[] for _ in servers]
            thread_ticks: list[dict[str, int]] = [{} for _ in servers]
            child_ticks = [0 for _ in servers]
            for r in range(args.rounds):
                order = list(range(len(servers)))
                if r % 2:
                    order.reverse()
                for i in order:
                    pid = _pid(servers[i])
                    children = descendants(pid)
                    before, children_before = _threads(pid), sum(_ticks(c) for c in children)
                    runs[i].append(run_wrk(servers[i].endpoint, paths[i], args.seconds))
                    after = _threads(pid)
                    child_ticks[i] += sum(_ticks(c) for c in children) - children_before
                    for task, ticks in after.items():
                        thread_ticks[i][task] = thread_ticks[i].get(task, 0) + ticks - before.get(task, ticks)
            for rev, result, threads, in_children in zip(
                args.revs, runs, thread_ticks, child_ticks, strict=True
            ):
                total = _combined(result)
                n = sum(run.requests for run in result) or 1
                busiest = ", ".join(_per(t, tick, n) for t in sorted(threads.values(), reverse=True)[:2])
                rounds = " ".join(f"{run.requests_per_s:.0f}" for run in result)
                print(f"{rev}: {total.requests_per_s:,.0f} req/s [{rounds}]; "
                      f"server threads {busiest} us/req; child processes {_per(in_children, tick, n)} us/req")  # fmt: skip
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
