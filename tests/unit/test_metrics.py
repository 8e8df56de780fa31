"""The metric store: aggregation per minute, percentile accuracy, flushing, restart, retention."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from lambdad.observe.metrics import Agg, MetricStore, bucket_index, series_key


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _agg(values: list[float]) -> Agg:
    agg = Agg()
    for v in values:
        agg.add(v, bucket_index(v))
    return agg


@pytest.mark.parametrize("p", [50, 90, 99, 99.9])
def test_percentiles_within_one_percent(p: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20_000)]
    agg = _agg(values)
    exact = sorted(values)[max(0, int(-(-p * len(values) // 100)) - 1)]
    assert agg.percentile(p) == pytest.approx(exact, rel=0.0101)


def test_basic_statistics_and_zero_bucket() -> None:
    agg = _agg([0.0, 0.0, 1.0, 3.0])
    assert (agg.count, agg.sum, agg.min, agg.max) == (4, 4.0, 0.0, 3.0)
    assert agg.percentile(50) == 0.0
    assert agg.percentile(100) == 3.0
    assert Agg().percentile(50) is None


def test_merge_equals_adding_everything() -> None:
    left, right = _agg([1, 2, 3]), _agg([10, 20])
    left.merge(right)
    whole = _agg([1, 2, 3, 10, 20])
    assert (left.count, left.sum, left.min, left.max, left.hist) == (
        whole.count,
        whole.sum,
        whole.min,
        whole.max,
        whole.hist,
    )
    assert Agg.from_row(*left.to_row()).hist == left.hist


def _store(tmp_path: Path, clock: Clock, **kwargs: float) -> MetricStore:
    return MetricStore(tmp_path / "metrics.db", clock=clock, **kwargs)  # type: ignore[arg-type]


def test_invocation_dimensions_and_minutes(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock(1_700_000_080.0)  # 40 s into a minute
        store = _store(tmp_path, clock)
        for i in range(30):
            clock.now += 1  # crosses into the next minute after 20
            store.record_invocation("fn", "prod", "3", float(i + 1), error=i % 10 == 0)
        store.record_throttle("fn", None)
        start, end = 1_699_999_980, 1_700_000_160
        by_fn = await store.aggregates(series_key("Invocations", {"FunctionName": "fn"}), start, end, 60)
        assert {ts: a.count for ts, a in by_fn.items()} == {1_700_000_040: 19.0, 1_700_000_100: 11.0}
        full = {"FunctionName": "fn", "Resource": "fn:prod", "ExecutedVersion": "3"}
        errors = await store.aggregates(series_key("Errors", full), start, end, 60)
        assert sum(a.sum for a in errors.values()) == 3
        assert sum(a.count for a in errors.values()) == 30
        account = await store.aggregates(series_key("Throttles", {}), start, end, 60)
        assert sum(a.sum for a in account.values()) == 1
        names = {(m.name, m.dimensions) for m, _ in store.metrics()}
        assert (
            "Duration",
            (("ExecutedVersion", "3"), ("FunctionName", "fn"), ("Resource", "fn:prod")),
        ) in names
        assert ("Throttles", (("FunctionName", "fn"),)) in names
        await store.close()

    asyncio.run(main())


def test_flush_then_read_from_disk_and_after_restart(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock(1_700_000_000.0)
        store = _store(tmp_path, clock)
        key = series_key("Duration", {"FunctionName": "fn"})
        for v in (10.0, 20.0, 30.0):
            store.record_invocation("fn", None, "$LATEST", v, error=False)
        clock.now += 120
        await store.flush()
        assert store.flushed_upto == 1_700_000_040  # 1_700_000_000 is 20 s past a minute
        store.record_invocation("fn", None, "$LATEST", 40.0, error=False)
        got = await store.aggregates(key, 1_699_999_000, 1_700_001_000, 60)
        assert sorted((ts, a.count, a.max) for ts, a in got.items()) == [
            (1_699_999_980, 3.0, 30.0),
            (1_700_000_100, 1.0, 40.0),
        ]
        await store.close()
        restarted = _store(tmp_path, clock)
        again = await restarted.aggregates(key, 1_699_999_000, 1_700_001_000, 60)
        assert sorted((ts, a.count) for ts, a in again.items()) == [
            (1_699_999_980, 3.0),
            (1_700_000_100, 1.0),
        ]
        assert any(m.name == "Duration" for m, _ in restarted.metrics())
        await restarted.close()

    asyncio.run(main())


def test_second_resolution_and_retention(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock(1_700_000_000.0)
        store = _store(tmp_path, clock, retention_days=1)
        store.record("AsyncEventAge", {"FunctionName": "fn"}, 5.0, "Milliseconds")
        clock.now += 2
        store.record("AsyncEventAge", {"FunctionName": "fn"}, 7.0, "Milliseconds")
        key = series_key("AsyncEventAge", {"FunctionName": "fn"})
        seconds = await store.aggregates(key, 1_700_000_000, 1_700_000_010, 1)
        assert sorted((ts, a.max) for ts, a in seconds.items()) == [
            (1_700_000_000, 5.0),
            (1_700_000_002, 7.0),
        ]
        clock.now += 120
        await store.flush()
        clock.now += 2 * 86_400
        await store.purge()
        assert await store.aggregates(key, 1_699_999_000, 1_700_001_000, 60) == {}
        assert store.metrics() == []
        await store.close()

    asyncio.run(main())


def test_concurrency_gauge_reports_maximum(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock(1_700_000_040.0)
        store = _store(tmp_path, clock)
        samples = iter([{"a": 1, "b": 2}, {"a": 4}, {}])
        store.set_concurrency_source(lambda: next(samples), lambda: 3)
        for _ in range(3):
            store.sample_concurrency()
            clock.now += 1
        per_fn = await store.aggregates(
            series_key("ConcurrentExecutions", {"FunctionName": "a"}), 0, 2**40, 60
        )
        assert [a.max for a in per_fn.values()] == [4.0]
        account = await store.aggregates(series_key("ConcurrentExecutions", {}), 0, 2**40, 60)
        assert [a.max for a in account.values()] == [4.0]
        unreserved = await store.aggregates(series_key("UnreservedConcurrentExecutions", {}), 0, 2**40, 60)
        assert [a.max for a in unreserved.values()] == [3.0]
        await store.close()

    asyncio.run(main())


def test_noted_invocations_fold_into_the_same_series_as_one_by_one(tmp_path: Path) -> None:
    """record_invocation only notes; a read folds a target's invocations at once. The series must be
    what adding every invocation to every series one at a time gives."""

    def same(got: Agg, want: Agg) -> None:
        assert (got.count, got.sum, got.min, got.max, got.hist) == (
            want.count,
            pytest.approx(want.sum),
            want.min,
            want.max,
            want.hist,
        )

    async def main() -> None:
        clock = Clock(1_700_000_000.0)
        store = _store(tmp_path, clock)
        rng = random.Random(3)
        runs: dict[tuple[str, bool], list[float]] = {("a", False): [], ("a", True): [], ("b", False): []}
        for i in range(300):
            function = "a" if i % 3 else "b"
            error = function == "a" and i % 7 == 0
            duration = rng.choice([0.0, rng.lognormvariate(1, 1)])
            runs[function, error].append(duration)
            store.record_invocation(function, None, "$LATEST", duration, error=error)
        window = (1_699_999_000, 1_700_001_000, 1)
        a_all = runs["a", False] + runs["a", True]
        dims = {"FunctionName": "a"}
        durations = await store.aggregates(series_key("Duration", dims), *window)
        same(durations[1_700_000_000], _agg(a_all))
        errors = (await store.aggregates(series_key("Errors", dims), *window))[1_700_000_000]
        want = Agg()
        for _ in runs["a", True]:
            want.add(1.0, 0)
        for _ in runs["a", False]:
            want.add(0.0, bucket_index(0.0))
        same(errors, want)
        only_b = (await store.aggregates(series_key("Errors", {"FunctionName": "b"}), *window))[1_700_000_000]
        assert (only_b.sum, only_b.min, only_b.max) == (0.0, 0.0, 0.0)
        account = (await store.aggregates(series_key("Invocations", {}), *window))[1_700_000_000]
        assert (account.count, account.sum) == (300, 300.0)
        totals = store.totals["a"]
        assert (totals.invocations, totals.errors) == (len(a_all), len(runs["a", True]))
        assert totals.duration_sum_ms == pytest.approx(sum(a_all))
        assert sum(totals.duration_buckets) == len(a_all)
        await store.close()

    asyncio.run(main())
