"""Building the scheduler for the composition root."""

from __future__ import annotations

from pathlib import Path

from lambdad.events.queues.store import QueueStore
from lambdad.events.scheduler.firing import FiringLoop
from lambdad.events.scheduler.service import SchedulerService
from lambdad.events.scheduler.store import ScheduleStore
from lambdad.events.scheduler.targets import Submit, Targets
from lambdad.functions.service import FunctionService
from lambdad.invoke.service import InvokeService


class Scheduler:
    """The scheduler's parts: the API service and the firing loop, started and closed together."""

    def __init__(
        self, data_dir: Path, functions: FunctionService, queues: QueueStore, invoker: InvokeService,
        submit: Submit | None,
    ) -> None:  # fmt: skip
        self.store = ScheduleStore(data_dir / "scheduler.db")
        targets = Targets(functions, queues, invoker.run, submit)
        self.loop = FiringLoop(self.store, targets.deliver, targets.dead_letter)
        self.service = SchedulerService(
            self.store, self.loop, functions.arns.region, functions.arns.account_id
        )

    def start(self) -> None:
        self.loop.start()

    async def close(self) -> None:
        await self.loop.close()
        self.store.close()
