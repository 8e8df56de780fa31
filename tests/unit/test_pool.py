"""The environment pool with fake environments: reuse, bounded starts, retirement, reaping, leases."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from lambdad.environments.pool import EnvironmentPool
from lambdad.invoke.concurrency import ConcurrencyLimiter, Throttled


@dataclass(eq=False)
class FakeEnv:
    number: int
    dead: bool = False
    destroyed: bool = False

    async def destroy(self) -> None:
        self.destroyed = True


class Starter:
    """Counts starts and how many ran at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.started: list[FakeEnv] = []
        self.running = 0
        self.most_at_once = 0

    async def __call__(self) -> FakeEnv:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        env = FakeEnv(len(self.started))
        self.started.append(env)
        return env


def pool(
    limit: int = 1000, spawn_limit: int = 4, clock: list[float] | None = None
) -> EnvironmentPool[FakeEnv]:
    now = clock if clock is not None else [0.0]
    return EnvironmentPool(
        ConcurrencyLimiter(limit), idle_timeout_s=60, clock=lambda: now[0], spawn_limit=spawn_limit
    )


def test_sequential_acquires_reuse_one_environment() -> None:
    async def main() -> None:
        p, start = pool(), Starter()
        for expected_cold in (True, False, False):
            async with p.acquire("fn:$LATEST", "fn", "v1", start) as lease:
                assert lease.cold is expected_cold
        assert len(start.started) == 1

    asyncio.run(main())


def test_starts_are_bounded_and_released_environments_serve_waiters() -> None:
    async def main() -> None:
        p, start = pool(spawn_limit=2), Starter(delay=0.05)

        async def one() -> int:
            async with p.acquire("fn:$LATEST", "fn", "v1", start) as lease:
                await asyncio.sleep(0.01)
                return lease.env.number

        await asyncio.gather(*(one() for _ in range(8)))
        assert start.most_at_once == 2
        assert len(start.started) < 8, "waiters should have taken environments given back"

    asyncio.run(main())


def test_changed_fingerprint_retires_idle_and_busy_environments() -> None:
    async def main() -> None:
        p, start = pool(), Starter()
        async with p.acquire("fn:$LATEST", "fn", "v1", start), p.acquire("fn:$LATEST", "fn", "v1", start):
            pass  # two environments of v1, both idle now
        async with p.acquire("fn:$LATEST", "fn", "v1", start) as busy:
            idle = next(env for env in start.started if env is not busy.env)
            async with p.acquire("fn:$LATEST", "fn", "v2", start) as fresh:
                assert fresh.cold
            await asyncio.sleep(0)
            assert idle.destroyed and not busy.env.destroyed
        assert busy.env.destroyed, "an environment of the old configuration is not reused"

    asyncio.run(main())


def test_dead_environment_is_not_reused() -> None:
    async def main() -> None:
        p, start = pool(), Starter()
        async with p.acquire("fn:$LATEST", "fn", "v1", start) as lease:
            lease.env.dead = True
        assert lease.env.destroyed
        async with p.acquire("fn:$LATEST", "fn", "v1", start) as again:
            assert again.cold

    asyncio.run(main())


def test_idle_environments_are_reaped_after_the_timeout() -> None:
    async def main() -> None:
        clock = [0.0]
        p, start = pool(clock=clock), Starter()
        async with p.acquire("fn:$LATEST", "fn", "v1", start):
            pass
        clock[0] = 30
        assert p.reap() == 0
        clock[0] = 61
        assert p.reap() == 1
        await asyncio.sleep(0)
        assert start.started[0].destroyed
        assert p.counts() == (0, 0)

    asyncio.run(main())


def test_reserved_concurrency_throttles_and_releases() -> None:
    async def main() -> None:
        p, start = pool(), Starter()
        p.limiter.set_reserved("fn", 1)
        async with p.acquire("fn:$LATEST", "fn", "v1", start):
            with pytest.raises(Throttled) as exc:
                async with p.acquire("fn:$LATEST", "fn", "v1", start):
                    pass
            assert exc.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
        async with p.acquire("fn:$LATEST", "fn", "v1", start):
            pass
        assert p.limiter.total_in_flight == 0

    asyncio.run(main())
