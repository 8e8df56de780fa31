"""docs/performance.md from one run: the machine, the command, the table, the profile, the meanings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.common import Results, fmt

HISTORY = """## What changed the numbers (kept by hand; the tables above are regenerated)
- **Bounded sandbox starts** (pool: at most 2 per CPU start at once; waiting invokes take
  environments as they come back). Before, a burst started one sandbox per request at once, every
  start slowed down, clients timed out and retried: a burst of 100 two-second invokes had 25 of 100
  succeed in 56.8 s. After: 100 of 100 in 6-10 s, 1000 of 1000 in 23-27 s.
- **Spare sandboxes** (`--prespawn`, default 4): complete sandboxes started ahead, at low priority
  and only once takes pause, specialised on assignment by mounting the code on their empty
  /var/task. First invoke of a fresh function, p50: 236 ms (every start cold) -> 3.5-4.3 ms, against
  13-18 ms for `python3 -c pass`. Same isolation as a cold start.
- **Byte-compiling Python code once at unpack**: Init Duration of a 300 KB module 741 ms -> 7-10 ms.
- **A smaller agent** (`python -S`, no `typing`, no `urllib.request` preload): PSS per idle
  environment 10.3 MiB -> 6.3 MiB.
- **Warm-up to a steady pool before the throughput run** (`bench/warm.py`): two seconds of wrk
  left about 15 of 32 environments started, so the measured window was full of sandbox starts
  (15% of the server's busy samples). Now wrk runs in 2 s rounds until the number of sandbox
  processes stops growing. Same code: 854-1,100 -> about 2,000 req/s.
- **Our own HTTP/1.1 server instead of uvicorn, and a leaner invoke path** (session of 2026-11-23):
  `lambdad.http.server` (httptools on uvloop) calls `App.handle` with the whole request, no ASGI
  messages or middleware; the pool lease is a plain async context manager; the invoke deadline is
  a loop timer instead of `asyncio.timeout()`; SigV4 builds the canonical query and headers once
  and skips re-encoding what is already canonical; query strings are parsed without `parse_qs`'s
  per-piece unquoting; logs, metrics and metering of an invoke are recorded after its answer is
  written (unless `LogType=Tail`); the agent reads a frame with one `recv()`. Sequential p50 against
  the floor: 4.3-4.8x -> 3.4-3.8x; server CPU per invoke 0.79-0.91 ms -> 0.5-0.7 ms (9.3-11.4x ->
  6-9x the floor's). This machine drifts: the floor itself moved between 0.14 and 0.24 ms over the
  day, so compare ratios.
- **What bounds the warm path now**: the server's one Python thread. About 0.45-0.7 ms of CPU per
  invoke, spread thin: SigV4 (15-25% of busy samples, more with presigned URLs), the socket writes
  to the sandbox and to the client (10-15%, system calls that wake the other process), the model-
  driven parsing, validation and rendering (about 8%), the pool, logs and metrics. No single piece
  is left that halves it. Under 32 connections that thread is saturated at about 2,000 invokes/s
  while the second CPU is half idle, which is why throughput is 0.05-0.07x the floor (target 0.2x):
  reaching it needs either several server processes sharing the pool's state or a hot path outside
  Python. A 128 MB function gets 7.2% of a CPU (as on AWS); a client invoking it back to back uses
  more than that (about 0.12 ms of sandbox CPU per invoke, most of it the kernel's), so it is
  throttled every 100 ms period: that is the 128 MB p99. At 1769 MB the p99 is about 2-3 ms.
- **Where one sequential warm invoke's time goes** (2026-11-23; a temporary patch took timestamps at
  seven points in the server, medians over 4,000 invokes at 1769 MB, p50 0.87 ms): HTTP receive and
  parse 40 us; starting the request's task 20 us; routing, query parsing and SigV4 128 us; model
  parsing, validation and the function lookup 48 us; the pool lease and the INVOKE frame 36 us; the
  sandbox round trip 215-230 us; outcome, response and write 100 us. With `--sandbox process` (no
  namespaces, seccomp or cgroups) the round trip is 199 us, so isolation costs about 30 us of it.
  The same code runs 2-3x faster in a warm loop (SigV4 25-45 us): a request here meets cold caches.
  The "one hop" line shows that a frame round trip through the uvloop loop costs about what a
  blocking one does, so the event loop is not the cost: the server's Python (about 0.4 ms) and the
  agent's (about 0.05-0.1 ms of CPU per invoke in the sandbox) are. Shorter CFS periods were tried
  for the 128 MB p99: 20 ms instead of 100 ms gave p99 13 ms instead of 30 ms, but the kernel's 1 ms
  minimum quota means 128 MB cannot keep its 7.2% share below a 13.8 ms period, so 5 ms is out of
  reach that way; the period stays 100 ms.
- **Alternating rounds instead of back-to-back runs** (2026-11-23, second session). The floor,
  the 128 MB function and the 1769 MB one now take turns in five rounds; lambdad and the floor, and
  lambdad and each peer, take turns under wrk too. Before, each was measured once, one after the
  other, and this machine's drift landed on whichever ran in a slow spell: a floor p50 of 0.152 ms
  made one run read 5.1x, another 3.4x. The comparison with serverless-offline changed the most.
  Measured at separate moments, lambdad looked ahead on throughput in one run (2,538 against 2,100
  req/s) and behind in another. Measured in turns, serverless-offline is ahead in both runs
  since: 2,482 against 1,952 req/s, then 3,739 against 2,219 (a fast spell, after the log writer
  change below). It answers from a Node.js HTTP server that hands each event to a pool of
  long-lived Python processes over their stdin and stdout, with no authentication, no isolation
  and no stored logs. lambdad is ahead on sequential p50 (0.855
  against 1.13 ms, then 0.679 against 0.852) and on CPU per sequential invoke.
- **What was measured and ruled out** (same session; an A/B harness ran two servers in 20
  alternating rounds, which separates changes of 2-3% on this machine):
  - callgrind counts about 710,000 instructions per warm invoke in the server process. About
    63% of them are in the request's coroutine and 9% in the HTTP parser and its callbacks. 8% are
    in SQLite on the log-writer thread. The interpreter's eval loop is about 23%.
  - Compiling the hot modules with mypyc (SigV4, routing and the model, the environment, metrics,
    logs, metering; 10 modules) changed the server's CPU per invoke by less than the noise. So
    interpreting the bytecode is not the cost; the work of the calls is.
  - Recording logs and metrics in 10 ms batches instead of after each answer changed neither
    sequential p50 nor CPU per invoke beyond the noise.
  - Under wrk, log storage did matter. Without SQLite inserts, throughput was 13% higher and the
    event loop's thread needed 50 us less CPU per invoke, though the writer has a thread of its
    own. That is what the next item fixed in part.
  - SCHED_BATCH for the sandboxes (no wakeup preemption of the server): +5% throughput, but
    sequential p50 up to 6% worse; not kept. gc.freeze() and a higher gen-0 threshold: within the
    noise; not kept.
  - Under wrk, `--sandbox process` (no namespaces, seccomp or cgroups) spends the same sandbox CPU
    per invoke as bubblewrap (215-246 us): isolation is not the cost under load either.
  - A C ping-pong over a socketpair takes 16-21 us per round trip here, about 11 us of system time
    per context switch, several times a bare-metal figure. Each invoke makes at least four context
    switches.
  - Pinning the server and the sandboxes to the same CPU or to different CPUs: no difference.
  - Throughput is bounded twice. The server's one thread is saturated at 96-100% (about 0.55-0.6
    ms per invoke), and all processes together need about 0.9 ms of CPU per invoke on 2 CPUs
    (server 0.55-0.6, log writer 0.07, sandbox 0.22, wrk). So several server processes would reach
    about 2,100 req/s at most, still short of serverless-offline's 2,482. Beating it on this machine
    needs less CPU per invoke in both the server and the agent, not only more processes.
- **The log writer yields the CPU** (same session): the SQLite writer thread runs at nice 10 while
  its batches are small, and at normal priority once a batch reaches 20,000 events, so a backlog
  is still written. Only where it can raise its priority again: as root, or under an RLIMIT_NICE
  that allows it. It also inserts 128 rows per statement instead of stepping one statement per
  row. Against the commit before, with wrk in alternating rounds: +6.1% and +5.9% throughput, and
  7% less server-thread CPU per invoke.
- **The CFS period, again** (same session): published measurements of a spinning 128 MB function
  on AWS Lambda (pwrdrvr/lambda-throttling) show pauses in whole multiples of 20 ms, so AWS's
  period looks like 20 ms, not our 100 ms. A/B at 128 MB, 20 alternating rounds, 100 ms against
  20 ms: p99 34.2 and 19.7 ms against 16.6 and 14.9 ms, but p50 0.90 and 0.80 ms against 1.21 and
  0.97 ms, and p90 1.0-1.3 ms against 4.2-8.8 ms. Back-to-back invokes need about 10% of a CPU in the
  sandbox, more than 128 MB's 7.2%. A short period throttles a little in every period; a long
  one throttles rarely but for longer. The period stays 100 ms, for the median that the issue
  measures; 20 ms would be closer to AWS for CPU-bound handlers.
- **What recording an invocation costs under load** (same session, after the log writer change; A/B
  under wrk in alternating rounds): not recording START/END/REPORT lines, metrics and metering at
  all gave +15% and +31% throughput, and 50-116 us less CPU per invoke on the event loop's thread.
  Recording them in 10 ms batches instead of one by one was inconsistent (+17%, then -6%). That
  cost is Python formatting and aggregation on the loop's thread, plus the SQLite writer beside it.
  The next step for throughput is a recorder process that receives one compact record per
  invocation, formats the lines and owns the log and metric writes. The event loop's thread would
  then only send, and the readers would ask that process for what it has not written yet.

- **The sandbox's side of an invoke, a third cheaper** (2026-11-23, third session). A 128 MB
  function has 7.2% of a CPU and the agent's own per-invoke work comes out of it: about 120 us of
  sandbox CPU per back-to-back invoke, 10% of the wall time, so the function was throttled in every
  CFS period (p99 21-36 ms). A perf profile of the agent showed JSON, glibc's setenv() and the
  interpreter spread thin, and the same Python code costing 2-3x its warm-loop time here because
  each invoke meets cold caches. Changes: INVOKE's frame header is lines instead of JSON (4.2 us to
  encode in the server and 2.6 us to decode in the sandbox; now 0.4 and 0.6); a frame that fills
  one read is decoded from that read; the result encoder and the event decoder are made once; the
  context skips the client-context work when there is none; `_X_AMZN_TRACE_ID` no longer goes
  through setenv() per invoke (which also leaked 140 bytes per invoke; see the agent's
  `TraceIdVariable`). In alternating rounds against the commit before: sandbox CPU per invoke
  120 -> 83 us and 97 -> 73 us, sequential p50 -5 to -7%.
- **Nine `make bench` runs of this session's code**, three at each of three commits. Throughput
  0.17x, 0.18x, 0.18x at b981375 (10,142 / 59,232, 9,887 / 55,689, 9,967 / 56,009 req/s); 0.19x,
  0.19x, 0.19x at 30c7748 (10,632 / 55,519, 10,794 / 56,442, 10,380 / 55,180); 0.18x, 0.16x, 0.18x
  at c028d3b (9,800 / 55,673, 8,777 / 55,534, 10,346 / 58,524), in a slower spell of the machine:
  the A/B rounds above measured c028d3b faster than 30c7748. Across all nine: p50 2.54x-2.84x the
  floor at 128 MB and 2.51x-2.76x at 1769 MB; 128 MB p99 2.06-2.96 ms; lambdad about twice
  serverless-offline under wrk in turns (8,776-10,624 against 4,145-4,873 req/s); cold p50
  0.21-0.25x; every burst of 1000 succeeded; PSS per idle environment 6.46 MiB.
- **What bounds throughput now** (system-wide perf during a 4 s wrk run at 10,200 req/s, at
  a138865, before the last items above): the server process 0.92 of a CPU (its loop's thread
  about 92 us per request, 81-88 after them), the sandboxes' agents
  0.43 (about 43 us per request), the log writer 0.18, wrk 0.16, and 15% of both CPUs idle. The
  loop's thread: 29% in the kernel (the two writes, to the client and to the sandbox, 19%; the
  reads 7%; the memory peak's pread 2%), 11% SigV4, 8% uvloop, 5% httptools, the rest spread over
  the invoke path in pieces of 1-3%. 0.2x of a 56,000 floor is 11,200 req/s: the loop's thread
  would have to get under about 85 us per request and all processes together under about 180 us,
  against about 92 and 170 now.
"""

MEANINGS = """## What each number means
- **compiled hot path (mypyc)**, in the machine table: whether the servers measured ran the
  invoke path's compiled modules (`lambdad/compiled.py`; `make setup` builds them) or, with
  "off", their Python sources.
- **warm / sequential invoke p50, p99**: one client, one persistent HTTP/1.1 connection
  (`http.client`), `POST /2015-03-31/functions/bench-noop/invocations` with body `{}`, each request
  signed with botocore's `SigV4Auth` *before* the clock starts; the clock covers send to last byte of
  the answer. Floor: `bench/floor_server.py`, a raw `asyncio.Protocol` on uvloop that parses just
  enough HTTP/1.1 and calls the same handler in-process (no auth, no isolation, no logs), measured
  with the same client on the same machine in the same run. The 128 MB function, the 1769 MB one
  and the floor take turns: five rounds of n/5 invokes each, so that this machine's drift (the floor
  alone moves 0.15-0.33 ms over a day) falls on all three alike rather than on whichever ran in a
  slow spell.
- **nodejs20.x sequential invoke**: the same client against a Node.js no-op (`async () => ({})`)
  at 1769 MB, in five rounds with the floor (the floor still calls the Python handler: there is no
  Node floor). Node runs as its own process that speaks the Runtime API over HTTP to the agent, as
  on AWS, so this line is the Runtime API's cost on top of the Python runtime's.
- **one hop**: `bench/hops.py`. A child process answers INVOKE frames with RESULT frames (the
  agent's loop without a handler); the p50 round trip of the same frames through a uvloop loop
  (the server's way) and through blocking sockets (the floor), in the same run.
- **client SigV4 signing**: the client's cost of signing one request; excluded from the latencies.
- **server CPU per invoke**: utime+stime of the lambdad server process (all threads) and its log
  writer process over the 128 MB function's sequential rounds, divided by its invokes; the sandbox
  line is the same for the processes in the warm environments (agent + handler). Floor: the floor
  server's CPU per request.
- **throughput, 32 connections**: `wrk -t2 -c32` with a SigV4 *query-string presigned* POST
  (botocore `SigV4QueryAuth`, `UNSIGNED-PAYLOAD`), which lambdad accepts and which is replayable
  until it expires, so every request is authenticated. On this 2-core machine wrk, the server and the
  sandboxes share the same 2 CPUs. Before measuring, wrk runs in 2 s rounds until the number of
  sandbox processes stops growing (warm environments for all 32 connections), so no sandbox starts
  inside the measured window. Floor: the floor server under the same wrk. lambdad and the floor
  take turns, three rounds of a third of the time each; the figure is the mean of the rounds.
- **cold / first invoke of a fresh function**: N functions are created and Active; each is invoked
  once (sequentially, on an open connection), so each invoke creates a new sandbox. Floor: the median
  of 20 runs of `/usr/bin/python3 -c pass` (the interpreter the sandboxes run).
- **heavy handler**: a handler importing a generated ~300 KiB module of small functions.
  Init Duration is read from the REPORT line returned with `LogType=Tail`; the read-only code
  directory has no `__pycache__`, so the module is compiled on every cold start. Host comparison:
  `python3 -B -c 'import bigmod'` (also compiles, also starts the interpreter).
- **scale / burst**: N invokes of a handler sleeping 2 s sent at once, each on its own connection,
  signed per request; every outcome is counted (HTTP status, AWS error type, function error).
  Wall time of the whole burst against the handler's 2 s.
- **PSS per idle warm environment**: after the burst, the sum of `Pss` from
  `/proc/<pid>/smaps_rollup` over every process in a sandbox's cgroup (`.../lambdad/<sandbox-id>/
  cgroup.procs`), median over all live sandboxes. PSS splits shared pages among sharers, so it
  falls as more environments share the interpreter. Reference: Firecracker's published < 5 MiB
  memory overhead per microVM (which excludes the guest's own processes).
- **peers**: the same no-op handler under each emulator, measured with the same client and wrk. A
  lambdad server runs beside each peer and the two take turns (five sequential rounds, three wrk
  rounds, both warmed up first), so the peer's figure has lambdad's from the same moments in its
  floor column: a ratio above 1x for latency, or below 1x for throughput, means lambdad is ahead.
"""


def write_report(
    out: Path, results: Results, machine: dict[str, str], command: str, profile: Counter[str] | None
) -> None:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run.py`); numbers below are from the latest run.",
        "",
    ]
    lines += ["## Machine and command", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines += [f"| command | `{command}` |", ""]
    lines += [
        "## Results",
        "",
        "| section | figure | value | floor | ratio | notes |",
        "|---|---|---|---|---|---|",
    ]
    for f in results.figures:
        floor = f"{fmt(f.floor)} {f.unit} ({f.floor_name})" if f.floor is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        lines.append(f"| {f.section} | {f.name} | {fmt(f.value)} {f.unit} | {floor} | {ratio} | {f.note} |")
    lines.append("")
    for section, notes in results.notes.items():
        lines += [f"- {section}: {note}" for note in notes]
    if results.notes:
        lines.append("")
    if profile:
        lines += profile_tables(profile)
    lines.append(HISTORY)
    lines.append(MEANINGS)
    out.write_text("\n".join(lines))


def profile_tables(profile: Counter[str], top: int = 15) -> list[str]:
    total = profile["total"] or 1
    lines = ["## Where the server's time goes on the warm path (py-spy, under wrk load)", "",
             f"{profile['total']} samples of the server's threads while busy (py-spy `record --format raw`,"
             " 250 Hz, idle excluded). Self: the frame on top of the stack. Inclusive: anywhere on it.", "",
             "| self % | function |", "|---|---|"]  # fmt: skip
    selfs = [(k[5:], v) for k, v in profile.most_common() if k.startswith("self:")]
    lines += [f"| {v / total:.1%} | `{k}` |" for k, v in selfs[:top]]
    lines += ["", "| inclusive % | lambdad function |", "|---|---|"]
    own = [(k[10:], v) for k, v in profile.most_common() if k.startswith("inclusive:") and "lambdad/" in k]
    lines += [f"| {v / total:.1%} | `{k}` |" for k, v in own[:top]]
    return lines + [""]
