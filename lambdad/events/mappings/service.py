"""Event source mappings: the CRUD operations of the Lambda API and the pollers they start.

States follow AWS: a create answers ``Creating`` and the mapping turns ``Enabled`` (or ``Disabled``)
once its poller runs; an update answers ``Updating`` (``Enabling``/``Disabling`` when ``Enabled``
changes); a delete answers ``Deleting``. Only SQS queues of this lambdad are event sources.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from lambdad.events.mappings.filters import compile_criteria
from lambdad.events.mappings.poller import Poller, PollSpec, Run
from lambdad.events.mappings.store import MappingRecord, MappingStore
from lambdad.events.queues.store import QueueStore
from lambdad.functions.service import FunctionService
from lambdad.http.errors import (
    InvalidParameterValueException,
    QueueDoesNotExist,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdad.store.base import FunctionRecord

log = logging.getLogger("lambdad.mappings")

DEFAULT_BATCH_SIZE = 10
DEFAULT_CONCURRENCY = 5
DEFAULT_PAGE = 100
_NOT_FOUND = "The resource you requested does not exist."
_TRANSITIONS = {"Creating", "Enabling", "Updating", "Disabling"}
#: Create/Update members that mean nothing for an SQS source, and AWS's answer to them.
_STREAM_ONLY = ("ParallelizationFactor", "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError",
                "MaximumRetryAttempts", "TumblingWindowInSeconds", "Topics", "Queues",
                "SelfManagedEventSource", "SourceAccessConfigurations")  # fmt: skip


class MappingService:
    """Control plane of event source mappings, and owner of their pollers."""

    def __init__(
        self,
        store: MappingStore,
        functions: FunctionService,
        queues: QueueStore,
        run: Run,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.functions = functions
        self.arns = functions.arns
        self.queues = queues
        self._run = run
        self._clock = clock
        self._pollers: dict[str, Poller] = {}
        self._lock = asyncio.Lock()
        self._settling: set[asyncio.Task[None]] = set()

    # -- API ---------------------------------------------------------------------------------------

    async def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        source = params.get("EventSourceArn")
        if not source or not str(source).startswith("arn:"):
            raise InvalidParameterValueException("Unrecognized event source.")
        self._check_sqs_only(params, source)
        function_arn = await self._function_arn(params["FunctionName"])
        await self._check_queue(source)
        filters = params.get("FilterCriteria")
        compile_criteria(filters)
        ident = str(uuid.uuid4())
        config: dict[str, Any] = {
            "UUID": ident,
            "EventSourceArn": source,
            "EventSourceMappingArn": f"arn:aws:lambda:{self.arns.region}:{self.arns.account_id}:"
            f"event-source-mapping:{ident}",
            "FunctionArn": function_arn,
            "BatchSize": params.get("BatchSize") or DEFAULT_BATCH_SIZE,
            "MaximumBatchingWindowInSeconds": params.get("MaximumBatchingWindowInSeconds") or 0,
            "FunctionResponseTypes": list(params.get("FunctionResponseTypes") or []),
            "State": "Creating",
            "StateTransitionReason": "USER_INITIATED",
        }
        if filters and filters.get("Filters"):
            config["FilterCriteria"] = filters
        if params.get("ScalingConfig"):
            config["ScalingConfig"] = params["ScalingConfig"]
        _check_batching(config)
        record = MappingRecord(ident, params.get("Enabled", True) is not False, config)
        async with self._lock:
            for existing in await self.store.all():
                same = existing.config["EventSourceArn"] == source
                if same and existing.config["FunctionArn"] == function_arn:
                    raise ResourceConflictException(
                        f'An event source mapping with SQS arn (" {source} ") and function '
                        f'(" {params["FunctionName"]} ") already exists. Please update or delete the '
                        f"existing mapping with UUID {existing.uuid}"
                    )
            await self._save(record)
        self._settle(record)
        return record.config

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return (await self._load(params["UUID"])).config

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        records = await self.store.all()
        if params.get("EventSourceArn"):
            records = [r for r in records if r.config["EventSourceArn"] == params["EventSourceArn"]]
        if params.get("FunctionName"):
            ref = self.arns.parse_function(params["FunctionName"])
            records = [r for r in records if _function_name(r.config["FunctionArn"]) == ref.name]
        start = int(params.get("Marker") or 0)
        limit = params.get("MaxItems") or DEFAULT_PAGE
        out: dict[str, Any] = {"EventSourceMappings": [r.config for r in records[start : start + limit]]}
        if start + limit < len(records):
            out["NextMarker"] = str(start + limit)
        return out

    async def update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        async with self._lock:
            record = await self._load(params["UUID"])
            if record.config["State"] in _TRANSITIONS:
                raise ResourceInUse(record.uuid)
            self._check_sqs_only(params, record.config["EventSourceArn"])
            config = dict(record.config)
            if params.get("FunctionName"):
                config["FunctionArn"] = await self._function_arn(params["FunctionName"])
            for key in ("BatchSize", "MaximumBatchingWindowInSeconds", "ScalingConfig"):
                if params.get(key) is not None:
                    config[key] = params[key]
            if params.get("FunctionResponseTypes") is not None:
                config["FunctionResponseTypes"] = list(params["FunctionResponseTypes"])
            if params.get("FilterCriteria") is not None:
                compile_criteria(params["FilterCriteria"])
                config["FilterCriteria"] = params["FilterCriteria"]
                if not params["FilterCriteria"].get("Filters"):
                    config.pop("FilterCriteria")
            _check_batching(config)
            enabled = record.enabled if params.get("Enabled") is None else bool(params["Enabled"])
            if enabled != record.enabled:
                config["State"] = "Enabling" if enabled else "Disabling"
            else:
                config["State"] = "Updating"
            record = MappingRecord(record.uuid, enabled, config)
            await self._save(record)
        self._settle(record)
        return record.config

    async def delete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        async with self._lock:
            record = await self._load(params["UUID"])
            await self._stop_poller(record.uuid)
            await self.store.delete(record.uuid)
        return {**record.config, "State": "Deleting"}

    # -- checks ------------------------------------------------------------------------------------

    def _check_sqs_only(self, params: Mapping[str, Any], source: str) -> None:
        if source.split(":")[2:3] != ["sqs"]:
            raise InvalidParameterValueException(
                "Unrecognized event source: lambdad maps only its own SQS-compatible queues to functions."
            )
        if params.get("DestinationConfig"):
            raise InvalidParameterValueException(
                "Unsupported DestinationConfig parameter for given event source mapping type."
            )
        if params.get("StartingPosition") is not None:
            raise InvalidParameterValueException(f"Unsupported starting position for arn type: {source}")
        for key in _STREAM_ONLY:
            if params.get(key) is not None:
                raise InvalidParameterValueException(
                    f"Unsupported {key} parameter for given event source mapping type."
                )

    async def _function_arn(self, identifier: str) -> str:
        ref = self.arns.parse_function(identifier)
        try:
            await self.functions.resolve(ref.name, ref.qualifier)
        except ResourceNotFoundException:
            raise InvalidParameterValueException("Function does not exist") from None
        return self.arns.function(ref.name, ref.qualifier)

    async def _check_queue(self, source: str) -> None:
        try:
            exists = await self.queues.exists(source)
        except QueueDoesNotExist:
            exists = False
        if not exists:
            raise InvalidParameterValueException(
                "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
                "SQS Error Message: The specified queue does not exist."
            )

    async def _load(self, ident: str) -> MappingRecord:
        record = await self.store.get(ident)
        if record is None:
            raise ResourceNotFoundException(_NOT_FOUND)
        return record

    async def _save(self, record: MappingRecord) -> None:
        record.config["LastModified"] = round(self._clock(), 3)
        await self.store.put(record)

    # -- pollers -----------------------------------------------------------------------------------

    def _settle(self, record: MappingRecord) -> None:
        """Bring a mapping from its transitional state to Enabled/Disabled in the background."""
        task = asyncio.get_running_loop().create_task(self._finish(record.uuid))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _finish(self, ident: str) -> None:
        async with self._lock:
            record = await self.store.get(ident)
            if record is None:
                return
            await self._stop_poller(ident)
            if record.enabled:
                self._start_poller(record)
            record.config["State"] = "Enabled" if record.enabled else "Disabled"
            await self.store.put(record)

    def _start_poller(self, record: MappingRecord) -> None:
        config = record.config
        ref = self.arns.parse_function(config["FunctionArn"])
        spec = PollSpec(
            uuid=record.uuid,
            queue_arn=config["EventSourceArn"],
            function_name=ref.name,
            qualifier=ref.qualifier,
            region=self.arns.region,
            batch_size=int(config["BatchSize"]),
            window_s=float(config.get("MaximumBatchingWindowInSeconds") or 0),
            concurrency=int(
                (config.get("ScalingConfig") or {}).get("MaximumConcurrency") or DEFAULT_CONCURRENCY
            ),
            report_failures="ReportBatchItemFailures" in config.get("FunctionResponseTypes", []),
            filters=compile_criteria(config.get("FilterCriteria")),
        )
        poller = Poller(spec, self.queues, self._resolve, self._run)
        self._pollers[record.uuid] = poller
        poller.start()

    async def _stop_poller(self, ident: str) -> None:
        poller = self._pollers.pop(ident, None)
        if poller is not None:
            await poller.stop(cancel_batches=False)

    async def _resolve(self, name: str, qualifier: str | None) -> FunctionRecord:
        record = await self.functions.ready(await self.functions.resolve(name, qualifier))
        state = record.config.get("State")
        if state != "Active":
            raise InvalidParameterValueException(f"The function is in state {state}")
        return record

    async def start(self) -> None:
        """At start-up: finish interrupted transitions and start a poller per enabled mapping."""
        for record in await self.store.all():
            self._settle(record)

    async def close(self) -> None:
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)
        pollers, self._pollers = list(self._pollers.values()), {}
        await asyncio.gather(*(p.stop(cancel_batches=True) for p in pollers), return_exceptions=True)
        self.store.close()


class ResourceInUse(ResourceConflictException):
    def __init__(self, ident: str) -> None:
        super().__init__(
            f"The operation cannot be performed at this time. The event source mapping {ident} is "
            "currently in a state that cannot be modified. Try again later."
        )


def _check_batching(config: Mapping[str, Any]) -> None:
    if int(config["BatchSize"]) > 10 and not config.get("MaximumBatchingWindowInSeconds"):
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        )


def _function_name(function_arn: str) -> str:
    return function_arn.split(":")[6]
