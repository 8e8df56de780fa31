"""The pool's provisioned environments: started ahead, handed out warm, never reaped, released."""

from __future__ import annotations

import asyncio

from lambdad.environments.pool import EnvironmentPool
from lambdad.invoke.concurrency import ConcurrencyLimiter


class FakeEnv:
    def __init__(self, alive: bool = True) -> None:
        self.destroyed = False
        self.alive = alive

    @property
    def dead(self) -> bool:
        return self.destroyed or not self.alive

    async def destroy(self) -> None:
        self.destroyed = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_prewarmed_environments_are_warm_and_not_reaped() -> None:
    async def scenario() -> None:
        clock = Clock()
        pool: EnvironmentPool[FakeEnv] = EnvironmentPool(
            ConcurrencyLimiter(10), idle_timeout_s=5, clock=clock
        )
        started: list[FakeEnv] = []

        async def start() -> FakeEnv:
            started.append(FakeEnv())
            return started[-1]

        assert await pool.prewarm("f:1", "f", "fp", start, 3) == 3
        assert pool.counts() == (3, 0) and pool.provisioned_count("f:1") == 3
        async with pool.acquire("f:1", "f", "fp", start) as lease:
            assert not lease.cold and lease.env in started
        assert len(started) == 3
        clock.now = 100.0
        assert pool.reap() == 0, "provisioned environments are exempt from idle reaping"
        pool.unprovision("f:1")
        await asyncio.sleep(0)
        assert pool.counts() == (0, 0) and all(env.destroyed for env in started)
        await pool.close()

    asyncio.run(scenario())


def test_prewarm_counts_only_live_environments() -> None:
    async def scenario() -> None:
        pool: EnvironmentPool[FakeEnv] = EnvironmentPool(ConcurrencyLimiter(10), idle_timeout_s=5)
        results = iter([FakeEnv(), FakeEnv(alive=False)])

        async def start() -> FakeEnv:
            return next(results)

        async def failing() -> FakeEnv:
            raise RuntimeError("no sandbox")

        assert await pool.prewarm("f:1", "f", "fp", start, 2) == 1
        assert await pool.prewarm("f:2", "f", "fp", failing, 2) == 0
        assert pool.provisioned_count("f:1") == 1
        await pool.close()

    asyncio.run(scenario())
