"""The pool of execution environments: warm reuse, cold starts, retirement and reaping.

Environments are kept per function version and configuration fingerprint. ``acquire`` hands out an
idle one (warm) or starts a new one (cold) and always takes it back, in an ``async with``, so an
error can neither leak an environment nor a concurrency lease. An environment that died during an
invoke, or whose function changed meanwhile, is destroyed on release instead of returning to idle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from lambdad.invoke.concurrency import ConcurrencyLimiter

log = logging.getLogger("lambdad.environments")

#: Provisioned environments started at once: a burst of sandboxes competes for the host's CPUs.
PREWARM_PARALLEL = 4


def default_spawn_limit() -> int:
    """Sandboxes started at once on this node. Starting more at a time does not start them sooner:
    they share the CPUs, every start gets slower, and a burst spirals into timeouts."""
    return max(4, 2 * (os.cpu_count() or 1))


class Disposable(Protocol):
    """What the pool needs of an environment."""

    @property
    def dead(self) -> bool: ...

    async def destroy(self) -> None: ...


E = TypeVar("E", bound=Disposable)

# Plain classes rather than dataclasses: mypyc (lambdad/compiled.py) cannot compile generic ones.


class _Idle(Generic[E]):
    def __init__(self, env: E, since: float) -> None:
        self.env = env
        self.since = since


class _FunctionEnvironments(Generic[E]):
    """The environments of one function version with one configuration fingerprint."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.idle: list[_Idle[E]] = []
        self.busy: set[E] = set()
        #: Environments started ahead for provisioned concurrency: never reaped while idle.
        self.provisioned: set[E] = set()


class Lease(Generic[E]):
    def __init__(self, env: E, cold: bool) -> None:
        self.env = env
        self.cold = cold


class EnvironmentPool(Generic[E]):
    """Idle and busy environments of every function, with the account's concurrency limiter."""

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        spawn_limit: int | None = None,
    ) -> None:
        self.limiter = limiter
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self.spawn_limit = spawn_limit or default_spawn_limit()
        self._spawning = 0
        #: Invokes waiting for an environment to come back or for a free start slot.
        self._waiters: list[asyncio.Future[None]] = []
        self._functions: dict[str, _FunctionEnvironments[E]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    def acquire(
        self, key: str, function: str, fingerprint: str, start: Callable[[], Awaitable[E]]
    ) -> _Acquire[E]:
        """Lease an environment of ``key`` in an ``async with``; ``start`` creates one when none is idle."""
        return _Acquire(self, key, function, fingerprint, start)

    def _group(self, key: str, fingerprint: str) -> _FunctionEnvironments[E]:
        group = self._functions.get(key)
        if group is None or group.fingerprint != fingerprint:
            if group is not None:
                log.info("configuration changed: retiring environments", extra={"key": key})
                self._retire_group(group)
            group = _FunctionEnvironments(fingerprint)
            self._functions[key] = group
        return group

    def _take_idle(self, group: _FunctionEnvironments[E]) -> Lease[E] | None:
        """An idle environment, most recently used first (the warmest caches); None when none is."""
        while group.idle:
            candidate = group.idle.pop().env
            if not candidate.dead:
                return Lease(candidate, cold=False)
            group.provisioned.discard(candidate)
            self._dispose(candidate)
        return None

    async def _take(self, group: _FunctionEnvironments[E], start: Callable[[], Awaitable[E]]) -> Lease[E]:
        """An idle environment, else a new one when a start slot is free, else wait for either."""
        while True:
            idle = self._take_idle(group)
            if idle is not None:
                return idle
            if self._spawning < self.spawn_limit:
                self._spawning += 1
                try:
                    return Lease(await start(), cold=True)
                finally:
                    self._spawning -= 1
                    self._wake()
            await self._wait()

    async def _wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        """Let every waiter look again: an environment came back or a start slot is free."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _keep(self, key: str, group: _FunctionEnvironments[E], env: E) -> bool:
        """Put a returned environment back among the idle ones; False when it is to be destroyed
        instead (dead, retired, or the pool is closing)."""
        if env.dead or self._functions.get(key) is not group or self._closing:
            group.provisioned.discard(env)
            return False
        group.idle.append(_Idle(env, self._clock()))
        self._wake()
        return True

    async def prewarm(
        self, key: str, function: str, fingerprint: str, start: Callable[[], Awaitable[E]], count: int
    ) -> int:
        """Start ``count`` environments of ``key`` ahead of any invoke and keep them idle, exempt from
        reaping (provisioned concurrency); returns how many started alive."""
        group = self._group(key, fingerprint)
        gate = asyncio.Semaphore(PREWARM_PARALLEL)

        async def one() -> E:
            async with gate:
                return await start()

        started = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        alive = 0
        for env in started:
            if isinstance(env, BaseException):
                log.error("starting a provisioned environment failed", exc_info=env)
            elif env.dead or self._functions.get(key) is not group or self._closing:
                self._dispose(env)
            else:
                group.provisioned.add(env)
                group.idle.append(_Idle(env, self._clock()))
                alive += 1
        return alive

    def unprovision(self, key: str) -> None:
        """``key``'s provisioned environments stop being provisioned: the idle ones are destroyed now,
        busy ones become ordinary environments."""
        group = self._functions.get(key)
        if group is None:
            return
        doomed, group.provisioned = group.provisioned, set()
        for slot in [s for s in group.idle if s.env in doomed]:
            group.idle.remove(slot)
            self._dispose(slot.env)

    def provisioned_count(self, key: str) -> int:
        group = self._functions.get(key)
        return len(group.provisioned) if group else 0

    def _retire_group(self, group: _FunctionEnvironments[E]) -> None:
        """Destroy the idle environments now; busy ones are destroyed when they are given back."""
        idle, group.idle = group.idle, []
        for slot in idle:
            self._dispose(slot.env)

    def _dispose(self, env: E) -> None:
        task = asyncio.get_running_loop().create_task(env.destroy())
        task.add_done_callback(_log_failure)

    def retire(self, prefix: str) -> None:
        """Retire every environment whose key starts with ``prefix`` (a function changed or went away)."""
        for key in [k for k in self._functions if k.startswith(prefix)]:
            group = self._functions.pop(key)
            self._retire_group(group)

    def has_provisioned(self, key: str) -> bool:
        """Whether ``key`` has environments started for provisioned concurrency."""
        group = self._functions.get(key)
        return group is not None and bool(group.provisioned)

    def counts(self) -> tuple[int, int]:
        """(idle, busy) environments over all functions."""
        idle = sum(len(g.idle) for g in self._functions.values())
        busy = sum(len(g.busy) for g in self._functions.values())
        return idle, busy

    def reap(self) -> int:
        """Destroy environments idle for longer than the idle timeout; returns how many."""
        deadline = self._clock() - self.idle_timeout_s
        reaped = 0
        for group in self._functions.values():
            keep = [slot for slot in group.idle if slot.since > deadline or slot.env in group.provisioned]
            for slot in group.idle:
                if slot.since <= deadline and slot.env not in group.provisioned:
                    self._dispose(slot.env)
                    reaped += 1
            group.idle = keep
        return reaped

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        interval = max(0.5, min(self.idle_timeout_s / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            if reaped := self.reap():
                log.info("reaped idle environments", extra={"count": reaped})

    async def close(self) -> None:
        """Destroy every environment; busy ones are destroyed as their invokes finish."""
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
        envs = [slot.env for g in self._functions.values() for slot in g.idle]
        envs += [env for g in self._functions.values() for env in g.busy]
        self._functions.clear()
        await asyncio.gather(*(env.destroy() for env in envs), return_exceptions=True)


class _Acquire(Generic[E]):
    """``EnvironmentPool.acquire``'s context manager: a concurrency lease, then an environment.

    A plain class rather than ``@asynccontextmanager``: it runs on every invoke, and the generator
    machinery cost more than the pool's own work.
    """

    __slots__ = ("pool", "key", "function", "fingerprint", "start", "group", "lease", "was_reserved")

    def __init__(
        self,
        pool: EnvironmentPool[E],
        key: str,
        function: str,
        fingerprint: str,
        start: Callable[[], Awaitable[E]],
    ) -> None:
        self.pool = pool
        self.key = key
        self.function = function
        self.fingerprint = fingerprint
        self.start = start

    async def __aenter__(self) -> Lease[E]:
        pool = self.pool
        self.was_reserved = pool.limiter.acquire(self.function)
        try:
            self.group = pool._group(self.key, self.fingerprint)
            # A warm environment is the usual case: taken without a coroutine of its own.
            lease = pool._take_idle(self.group)
            self.lease = lease if lease is not None else await pool._take(self.group, self.start)
        except BaseException:
            pool.limiter.release(self.function, self.was_reserved)
            raise
        self.group.busy.add(self.lease.env)
        return self.lease

    async def __aexit__(self, *exc: object) -> None:
        env = self.lease.env
        self.group.busy.discard(env)
        try:
            if not self.pool._keep(self.key, self.group, env):
                await env.destroy()
        finally:
            self.pool.limiter.release(self.function, self.was_reserved)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("destroying an environment failed", exc_info=task.exception())
