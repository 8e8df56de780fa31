"""The agent's _X_AMZN_TRACE_ID, in a child interpreter: real glibc environment, real memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    from lambdad.runtime.agent import TraceIdVariable

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    def child():
        return subprocess.run(["printenv", "_X_AMZN_TRACE_ID"], capture_output=True, text=True).stdout.strip()

    def distinct(setter, n):
        before = rss_mib()
        for i in range(n):
            setter(f"Root=1-{i:08x}-000000000000000000000000;Parent=0000000000000000;Sampled=0")
        return rss_mib() - before

    variable = TraceIdVariable()
    if sys.argv[1] == "environ":
        print(distinct(lambda v: os.environ.__setitem__("_X_AMZN_TRACE_ID", v), 100_000))
        sys.exit()
    for i in range(TraceIdVariable.ADOPT_AFTER + 1):
        variable.set(f"early-{i}")
    assert os.environ["_X_AMZN_TRACE_ID"] == child() == f"early-{TraceIdVariable.ADOPT_AFTER}"
    growth = distinct(variable.set, 100_000)
    assert os.environ["_X_AMZN_TRACE_ID"] == child() == "Root=1-0001869f-000000000000000000000000;Parent=0000000000000000;Sampled=0"
    variable.set(None)
    assert "_X_AMZN_TRACE_ID" not in os.environ and child() == ""
    variable.set("back")
    assert os.environ["_X_AMZN_TRACE_ID"] == child() == "back"
    os.environ["_X_AMZN_TRACE_ID"] = "the function's own"
    variable.set("x" * 600)  # longer than the buffer, after the function replaced the variable
    assert os.environ["_X_AMZN_TRACE_ID"] == child() == "x" * 600
    variable.set("short")
    assert os.environ["_X_AMZN_TRACE_ID"] == child() == "short"
    print(growth)
    """
)


def run(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_trace_id_variable_does_not_grow_memory_and_children_see_it() -> None:
    leak = run("environ")  # the yardstick: setenv() keeps every value, about 140 bytes each
    assert leak > 8, f"setenv() did not grow memory ({leak:.1f} MiB): the yardstick is broken"
    assert run("variable") < 1
