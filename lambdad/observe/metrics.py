"""AWS/Lambda metrics: recorded in memory on the invoke path, aggregated, kept in SQLite.

The hot path (``record_invocation``, ``record_throttle``, ``record``) only updates in-memory
aggregates of the current second: one dict lookup and a few additions per series, no I/O, no lock
(call it on the event loop's thread). A background task, every ``FLUSH_INTERVAL_S``:

* samples the concurrency gauge (ConcurrentExecutions, UnreservedConcurrentExecutions) once a second,
  so their per-minute Maximum is what AWS reports;
* rolls the seconds of every closed minute up into one row per series and minute and writes them to
  ``<data_dir>/metrics.db`` on a writer thread (reads run on a second thread, as in the log store);
* drops second-resolution data older than ``high_res_window_s`` (default one hour, and capped in
  size), and once in a while purges minutes older than the retention (default 15 days).

Each aggregate keeps SampleCount, Sum, Minimum, Maximum and a log-spaced histogram (DDSketch's
idea: bucket ``i`` holds values in (γ^(i-1), γ^i] with γ = 1.01/0.99), so any percentile is within
1% of the true value; zero and negative values share one bucket.

Reads see everything recorded so far: minutes before ``flushed_upto`` come from SQLite, later ones
from memory, split at one instant so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lambdad import tasks
from lambdad.store import sqlite_files

log = logging.getLogger("lambdad.metrics")
T = TypeVar("T")

NAMESPACE = "AWS/Lambda"
#: (namespace, metric name, dimensions as sorted (name, value) pairs)
SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]
ConcurrencySource = Callable[[], Mapping[str, int]]

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_INV_LOG_GAMMA = 1 / math.log(GAMMA)
#: The bucket of zero and negative values: below every real bucket index.
ZERO_BUCKET = -(2**31)

DAY_S = 86_400
DEFAULT_RETENTION_DAYS = 15
FLUSH_INTERVAL_S = 2.0
SAMPLE_INTERVAL_S = 1.0
#: Noted invocations are folded into their series at least once per sample, and at this many.
FOLD_AT = 10_000
PURGE_INTERVAL_S = 3600.0
#: A minute is written once the clock is this far past its end.
CLOSE_GRACE_S = 1
#: Most (second, series) aggregates kept for second-resolution reads; older seconds go first.
MAX_HIGH_RES_POINTS = 500_000
#: Distinct (function, resource, version) combinations whose series keys stay cached.
_KEY_CACHE_LIMIT = 10_000

#: Upper bounds (ms) of the Prometheus duration histogram.
DURATION_BUCKETS_MS = (
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10_000,
    30_000,
    60_000,
    300_000,
    900_000,
)

UNITS = {
    "Invocations": "Count",
    "Errors": "Count",
    "Throttles": "Count",
    "Duration": "Milliseconds",
    "ConcurrentExecutions": "Count",
    "UnreservedConcurrentExecutions": "Count",
    "AsyncEventsReceived": "Count",
    "AsyncEventAge": "Milliseconds",
    "AsyncEventsDropped": "Count",
    "DeadLetterErrors": "Count",
    "DestinationDeliveryFailures": "Count",
    "ProvisionedConcurrencyInvocations": "Count",
    "ProvisionedConcurrencySpilloverInvocations": "Count",
    "ProvisionedConcurrencyUtilization": "None",
    "ProvisionedConcurrentExecutions": "Count",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dims TEXT NOT NULL,
    unit TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    UNIQUE (namespace, name, dims)
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    hist TEXT NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_ts ON points (ts);
"""


def bucket_index(value: float) -> int:
    """The histogram bucket of ``value``."""
    if value <= 0:
        return ZERO_BUCKET
    return math.ceil(math.log(value) * _INV_LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The representative of a bucket: within ALPHA of every value in it."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


class Agg:
    """SampleCount, Sum, Minimum, Maximum and a percentile histogram of some values."""

    __slots__ = ("count", "sum", "min", "max", "hist")

    def __init__(self) -> None:
        self.count = 0.0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.hist: dict[int, float] = {}

    def add(self, value: float, index: int) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        hist = self.hist
        hist[index] = hist.get(index, 0) + 1

    def add_many(self, value: float, index: int, n: int) -> None:
        """``add(value, index)`` done ``n`` times."""
        self.count += n
        self.sum += value * n
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        hist = self.hist
        hist[index] = hist.get(index, 0) + n

    def merge(self, other: Agg) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        hist = self.hist
        for index, n in other.hist.items():
            hist[index] = hist.get(index, 0) + n

    def percentile(self, p: float) -> float | None:
        """The p-th percentile (nearest rank), within 1% of the true value; None when empty."""
        if self.count == 0:
            return None
        if p <= 0:
            return self.min
        if p >= 100:
            return self.max
        rank = max(1.0, math.ceil(p / 100 * self.count - 1e-9))
        seen = 0.0
        for index in sorted(self.hist):
            seen += self.hist[index]
            if seen >= rank:
                return min(max(bucket_value(index), self.min), self.max)
        return self.max

    def to_row(self) -> tuple[float, float, float, float, str]:
        hist = json.dumps(sorted(self.hist.items()), separators=(",", ":"))
        return self.count, self.sum, self.min, self.max, hist

    @classmethod
    def from_row(cls, count: float, total: float, low: float, high: float, hist: str) -> Agg:
        agg = cls()
        agg.count, agg.sum, agg.min, agg.max = count, total, low, high
        agg.hist = {int(i): n for i, n in json.loads(hist)}
        return agg


class FunctionTotals:
    """Counters of one function since the server started (what a Prometheus scrape reads)."""

    __slots__ = ("invocations", "errors", "throttles", "duration_sum_ms", "duration_buckets")

    def __init__(self) -> None:
        self.invocations = 0
        self.errors = 0
        self.throttles = 0
        self.duration_sum_ms = 0.0
        #: Non-cumulative counts per DURATION_BUCKETS_MS bound, the last one for +Inf.
        self.duration_buckets = [0] * (len(DURATION_BUCKETS_MS) + 1)


@dataclass(frozen=True)
class Metric:
    """A metric's identity as ListMetrics shows it."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    unit: str


def series_key(name: str, dimensions: Mapping[str, str], namespace: str = NAMESPACE) -> SeriesKey:
    return namespace, name, tuple(sorted(dimensions.items()))


def _dims_text(dims: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dims, separators=(",", ":"))


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    return sqlite_files.connect(path, _SCHEMA, readonly=readonly)


class MetricStore:
    """Every metric of one node: recorder (hot path), aggregates in memory, ``metrics.db`` on disk."""

    def __init__(
        self,
        path: Path,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
        high_res_window_s: int = 3600,
        max_high_res_points: int = MAX_HIGH_RES_POINTS,
    ) -> None:
        self._path = path
        self.retention_s = retention_days * DAY_S
        self._clock = clock
        self._high_res_window_s = high_res_window_s
        self._max_high_res_points = max_high_res_points
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-reader")
        self._wconn = self._writer.submit(_connect, path, False).result()
        self._rconn = self._reader.submit(_connect, path, True).result()
        #: second -> series -> aggregate: the hot path writes the current second's dict.
        self._seconds: dict[int, dict[SeriesKey, Agg]] = {}
        self._high_res_points = 0
        self._units: dict[SeriesKey, str] = {}
        #: Series known to ListMetrics, with the last second each was seen.
        self._known: dict[SeriesKey, int] = {}
        self._ids: dict[SeriesKey, int] = {}
        self._key_cache: dict[tuple[str, str | None, str], tuple[list[SeriesKey], ...]] = {}
        now = int(clock())
        #: Minutes before this instant are in SQLite; this minute and later ones are in memory.
        self.flushed_upto = now - now % 60
        self._load()
        self._concurrency: ConcurrencySource | None = None
        self._unreserved: Callable[[], int] | None = None
        #: Cumulative counts since start, per function, for the Prometheus exposition.
        self._totals: dict[str, FunctionTotals] = {}
        #: Invocations recorded and not yet folded into ``_seconds`` and ``_totals`` (see _fold).
        self._unfolded: list[tuple[int, str, str | None, str, float, bool]] = []
        #: Cumulative sums of the other Count metrics, per (metric name, function or "").
        self.event_totals: dict[tuple[str, str], float] = defaultdict(float)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- life cycle -------------------------------------------------------------------------------

    def _load(self) -> None:
        """Known series from disk, and the open minute's rows back into memory (a restart mid-minute)."""

        def load(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            series = conn.execute("SELECT id, namespace, name, dims, unit, last_seen FROM series").fetchall()
            open_rows = conn.execute(
                "SELECT series_id, ts, count, sum, min, max, hist FROM points WHERE ts >= ?",
                (self.flushed_upto,),
            ).fetchall()
            return series, open_rows

        series, open_rows = self._writer.submit(load, self._wconn).result()
        by_id: dict[int, SeriesKey] = {}
        for sid, namespace, name, dims, unit, last_seen in series:
            key: SeriesKey = (namespace, name, tuple((a, b) for a, b in json.loads(dims)))
            by_id[sid] = key
            self._ids[key] = sid
            self._units[key] = unit
            self._known[key] = last_seen
        for sid, ts, count, total, low, high, hist in open_rows:
            self._seconds.setdefault(ts, {})[by_id[sid]] = Agg.from_row(count, total, low, high, hist)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._background(), name="metrics-flush")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await tasks.stop(self._task)
        await self.flush(everything=True)
        await self._on_writer(lambda conn: conn.close())
        await self._on_reader(lambda conn: conn.close())
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    async def _background(self) -> None:
        last_flush = last_purge = time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            try:
                self.sample_concurrency()
                if time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                    last_flush = time.monotonic()
                    await self.flush()
                if time.monotonic() - last_purge >= PURGE_INTERVAL_S:
                    last_purge = time.monotonic()
                    await self.purge()
            except Exception:
                log.exception("metrics flush failed")

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, self._wconn)

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, self._rconn)

    # --- the hot path -----------------------------------------------------------------------------

    def _keys(self, function: str, resource: str | None, version: str) -> tuple[list[SeriesKey], ...]:
        """Series keys of (Invocations, Errors, Duration, Throttles) for one invocation target."""
        cached = self._key_cache.get((function, resource, version))
        if cached is not None:
            return cached
        dim_sets: list[dict[str, str]] = [{}, {"FunctionName": function}]
        if resource is not None:
            qualified = f"{function}:{resource}"
            dim_sets.append({"FunctionName": function, "Resource": qualified})
            dim_sets.append({"FunctionName": function, "Resource": qualified, "ExecutedVersion": version})
        keys = tuple(
            [series_key(name, dims) for dims in dim_sets]
            for name in ("Invocations", "Errors", "Duration", "Throttles")
        )
        throttles = keys[3][:3]  # a throttled request executed no version
        result = (keys[0], keys[1], keys[2], throttles)
        if len(self._key_cache) >= _KEY_CACHE_LIMIT:
            self._key_cache.clear()
        self._key_cache[function, resource, version] = result
        for name, group in zip(("Invocations", "Errors", "Duration", "Throttles"), result, strict=True):
            for key in group:
                self._units.setdefault(key, UNITS[name])
        return result

    def _second(self, at: int | None = None) -> dict[SeriesKey, Agg]:
        """The series of second ``at`` (now by default), made on first use."""
        now = int(self._clock()) if at is None else at
        second = self._seconds.get(now)
        if second is None:
            second = self._seconds[now] = {}
        return second

    def _agg(self, series: dict[SeriesKey, Agg], key: SeriesKey) -> Agg:
        agg = series.get(key)
        if agg is None:
            agg = series[key] = Agg()
            self._high_res_points += 1
        return agg

    def _add(self, second: dict[SeriesKey, Agg], keys: Iterable[SeriesKey], value: float, index: int) -> None:
        for key in keys:
            self._agg(second, key).add(value, index)

    def _function_totals(self, function: str) -> FunctionTotals:
        totals = self._totals.get(function)
        if totals is None:
            totals = self._totals[function] = FunctionTotals()
        return totals

    def record_invocation(
        self, function: str, resource: str | None, executed_version: str, duration_ms: float, error: bool
    ) -> None:
        """One invocation that ran (to success or a function error).

        ``resource`` is the qualifier the caller used (alias or version), None when unqualified; the
        Resource dimension reads ``function:qualifier`` as in AWS.

        Only noted here: every read folds what was noted first (``_fold``), and so does the
        once-a-second sampler. Each invocation updates up to 12 series, which cost the event
        loop's thread more per invoke than anything else recorded about it.
        """
        unfolded = self._unfolded
        unfolded.append((int(self._clock()), function, resource, executed_version, duration_ms, error))
        if len(unfolded) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Add the noted invocations to their seconds' series and the totals, a target at a time."""
        unfolded, self._unfolded = self._unfolded, []
        by_target: dict[tuple[int, str, str | None, str], list[tuple[float, bool]]] = defaultdict(list)
        for second, function, resource, version, duration_ms, error in unfolded:
            by_target[second, function, resource, version].append((duration_ms, error))
        for (second, function, resource, version), runs in by_target.items():
            totals = self._function_totals(function)
            n, errors, durations = len(runs), sum(error for _, error in runs), Agg()
            for duration_ms, _ in runs:
                durations.add(duration_ms, bucket_index(duration_ms))
                totals.duration_buckets[bisect_left(DURATION_BUCKETS_MS, duration_ms)] += 1
            invocation_keys, error_keys, duration_keys, _ = self._keys(function, resource, version)
            series = self._second(second)
            for key in invocation_keys:
                self._agg(series, key).add_many(1.0, 0, n)
            for key in error_keys:
                agg = self._agg(series, key)
                if errors:
                    agg.add_many(1.0, 0, errors)
                if n > errors:
                    agg.add_many(0.0, ZERO_BUCKET, n - errors)
            for key in duration_keys:
                self._agg(series, key).merge(durations)
            totals.invocations += n
            totals.errors += errors
            totals.duration_sum_ms += durations.sum

    @property
    def totals(self) -> dict[str, FunctionTotals]:
        self._fold()
        return self._totals

    def record_throttle(self, function: str, resource: str | None) -> None:
        """One request refused for lack of concurrency (429)."""
        throttles = self._keys(function, resource, "")[3]
        self._add(self._second(), throttles, 1.0, 0)
        self._function_totals(function).throttles += 1

    def record(self, name: str, dimensions: Mapping[str, str], value: float, unit: str) -> None:
        """Any other AWS/Lambda metric (AsyncEventsReceived, AsyncEventAge, DeadLetterErrors, ...)."""
        key = series_key(name, dimensions)
        self._units.setdefault(key, unit)
        self._add(self._second(), (key,), value, bucket_index(value))
        if unit == "Count":
            self.event_totals[name, dimensions.get("FunctionName", "")] += value

    # --- the concurrency gauge --------------------------------------------------------------------

    def set_concurrency_source(
        self, in_flight: ConcurrencySource, unreserved_in_flight: Callable[[], int]
    ) -> None:
        """Where ConcurrentExecutions (per function and account) and UnreservedConcurrentExecutions come from."""
        self._concurrency = in_flight
        self._unreserved = unreserved_in_flight

    def concurrency(self) -> tuple[dict[str, int], int]:
        """The gauge right now: ({function: in flight}, unreserved in flight)."""
        if self._concurrency is None or self._unreserved is None:
            return {}, 0
        return dict(self._concurrency()), int(self._unreserved())

    def sample_concurrency(self) -> None:
        """One sample of the gauge; its per-minute Maximum is the AWS statistic."""
        self._fold()
        per_function, unreserved = self.concurrency()
        if not per_function and not unreserved:
            return
        for function, n in per_function.items():
            self._gauge("ConcurrentExecutions", {"FunctionName": function}, n)
        self._gauge("ConcurrentExecutions", {}, sum(per_function.values()))
        self._gauge("UnreservedConcurrentExecutions", {}, unreserved)

    def _gauge(self, name: str, dims: Mapping[str, str], value: float) -> None:
        key = series_key(name, dims)
        self._units.setdefault(key, "Count")
        self._add(self._second(), (key,), value, bucket_index(value))

    # --- writing ----------------------------------------------------------------------------------

    def _closed_minutes(self, everything: bool) -> list[tuple[int, dict[SeriesKey, Agg]]]:
        """Roll seconds up into minutes from ``flushed_upto`` to the last closed minute (or all)."""
        self._fold()
        now = int(self._clock())
        by_minute: dict[int, dict[SeriesKey, Agg]] = defaultdict(dict)
        for second, series in self._seconds.items():
            minute = second - second % 60
            if minute < self.flushed_upto or (not everything and minute + 60 + CLOSE_GRACE_S > now):
                continue
            rolled = by_minute[minute]
            for key, agg in series.items():
                target = rolled.get(key)
                if target is None:
                    target = rolled[key] = Agg()
                target.merge(agg)
        return sorted(by_minute.items())

    async def flush(self, everything: bool = False) -> None:
        """Write every closed minute (every minute, open ones too, when ``everything``)."""
        minutes = self._closed_minutes(everything)
        now = int(self._clock())
        new_upto = self.flushed_upto
        if minutes:
            new_upto = max(self.flushed_upto, minutes[-1][0] + 60)
            rows = [
                (key, self._units.get(key, "None"), minute, agg)
                for minute, series in minutes
                for key, agg in series.items()
            ]
            seen = {key: minute + 59 for minute, series in minutes for key in series}
            await self._on_writer(lambda conn: self._write(conn, rows, seen))
            for key, last in seen.items():
                self._known[key] = max(self._known.get(key, 0), last)
        if not everything:
            self.flushed_upto = new_upto
        self._trim_high_res(now)

    def _write(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[SeriesKey, str, int, Agg]],
        seen: Mapping[SeriesKey, int],
    ) -> None:
        conn.execute("BEGIN")
        try:
            for key, last in seen.items():
                self._series_id(conn, key, self._units.get(key, "None"), last)
            conn.executemany(
                "INSERT OR REPLACE INTO points (series_id, ts, count, sum, min, max, hist) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self._ids[key], minute, *agg.to_row()) for key, _, minute, agg in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _series_id(self, conn: sqlite3.Connection, key: SeriesKey, unit: str, last_seen: int) -> int:
        namespace, name, dims = key
        text = _dims_text(dims)
        conn.execute(
            "INSERT INTO series (namespace, name, dims, unit, last_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, name, dims) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
            (namespace, name, text, unit, last_seen),
        )
        sid = self._ids.get(key)
        if sid is None:
            row = conn.execute(
                "SELECT id FROM series WHERE namespace = ? AND name = ? AND dims = ?", (namespace, name, text)
            ).fetchone()
            sid = self._ids[key] = int(row[0])
        return sid

    def _trim_high_res(self, now: int) -> None:
        """Forget seconds past the window (or over the cap), never ones not yet written."""
        horizon = min(now - self._high_res_window_s, self.flushed_upto)
        for second in sorted(self._seconds):
            over_cap = self._high_res_points > self._max_high_res_points
            if second >= self.flushed_upto or (second >= horizon and not over_cap):
                break
            self._high_res_points -= len(self._seconds.pop(second))

    async def purge(self) -> None:
        """Drop minutes and series older than the retention."""
        cutoff = int(self._clock() - self.retention_s)

        def purge(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM points WHERE ts < ?", (cutoff,))
            conn.execute("DELETE FROM series WHERE last_seen < ?", (cutoff,))

        await self._on_writer(purge)
        self._trim_high_res(int(self._clock()))
        for key in [k for k, last in self._known.items() if last < cutoff]:
            del self._known[key]
            self._ids.pop(key, None)

    # --- reading ----------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def unit_of(self, key: SeriesKey) -> str | None:
        return self._units.get(key)

    def metrics(self) -> list[tuple[Metric, int]]:
        """Every known metric with the last second it had data."""
        self._fold()
        seen = dict(self._known)
        for second, series in self._seconds.items():
            for key in series:
                if seen.get(key, -1) < second:
                    seen[key] = second
        return [
            (Metric(key[0], key[1], key[2], self._units.get(key, "None")), last)
            for key, last in sorted(seen.items())
        ]

    async def aggregates(self, key: SeriesKey, start: int, end: int, resolution: int) -> dict[int, Agg]:
        """Aggregates of ``key`` per ``resolution`` seconds (1 or 60) in [start, end), keyed by their start."""
        self._fold()
        split = self.flushed_upto
        out: dict[int, Agg] = {}
        for second in list(self._seconds):
            if second < start or second >= end or (resolution >= 60 and second < split):
                continue
            agg = self._seconds[second].get(key)
            if agg is not None:
                slot = second - second % resolution
                target = out.get(slot)
                if target is None:
                    target = out[slot] = Agg()
                target.merge(agg)
        if resolution < 60 or start >= split:
            return out
        namespace, name, dims = key
        text = _dims_text(dims)
        disk_end = min(end, split)

        def read(conn: sqlite3.Connection) -> list[tuple[int, float, float, float, float, str]]:
            return conn.execute(
                "SELECT p.ts, p.count, p.sum, p.min, p.max, p.hist FROM points p JOIN series s ON s.id = p.series_id "
                "WHERE s.namespace = ? AND s.name = ? AND s.dims = ? AND p.ts >= ? AND p.ts < ?",
                (namespace, name, text, start, disk_end),
            ).fetchall()

        for ts, count, total, low, high, hist in await self._on_reader(read):
            out[ts] = Agg.from_row(count, total, low, high, hist)
        return out
