"""Building the event source mappings for the composition root."""

from __future__ import annotations

from pathlib import Path

from lambdad.events.mappings.service import MappingService
from lambdad.events.mappings.store import MappingStore
from lambdad.events.queues.store import QueueStore
from lambdad.functions.service import FunctionService
from lambdad.invoke.service import InvokeService


def build_mappings(
    data_dir: Path, functions: FunctionService, queues: QueueStore, invoker: InvokeService
) -> MappingService:
    """The mapping service over ``<data_dir>/mappings.db``; ``start()`` it at server start."""
    return MappingService(MappingStore(data_dir / "mappings.db"), functions, queues, invoker.run)
