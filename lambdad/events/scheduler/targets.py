"""Delivering a schedule's event: invoke a Lambda function (as an Event invoke) or send to a queue.

A Lambda delivery is handed to the durable async queue (``submit``) as AWS's Scheduler invokes
asynchronously: once submitted it is the async path's (retries, destinations). Without ``submit`` (unit
tests) the invocation runs here, waiting out throttling, and counts as delivered when it finishes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

from lambdad.events.mappings.poller import Run
from lambdad.events.queues.store import QueueStore
from lambdad.events.scheduler.firing import DeliveryError
from lambdad.events.scheduler.store import Firing
from lambdad.functions.service import FunctionService
from lambdad.http.errors import AwsError
from lambdad.invoke.concurrency import Throttled

THROTTLE_WAIT_S = 0.05
#: The durable async queue's ``submit(function, qualifier, payload, request_id)``.
Submit = Callable[[str, str | None, bytes, str], Awaitable[None]]


class Targets:
    def __init__(
        self, functions: FunctionService, queues: QueueStore, run: Run, submit: Submit | None
    ) -> None:
        self.functions = functions
        self.queues = queues
        self._run = run
        self._submit = submit

    async def deliver(self, firing: Firing) -> None:
        arn = str(firing.target["Arn"])
        payload = str(firing.target.get("Input") or "{}")
        if arn.split(":")[2] == "sqs":
            try:
                await self.queues.send(arn, payload)
            except AwsError as error:
                raise DeliveryError(error.code, error.message) from error
            return
        try:
            record = await self.functions.ready(await self.functions.resolve(arn))
        except AwsError as error:
            raise DeliveryError(error.code, error.message) from error
        if record.config.get("State") != "Active":
            raise DeliveryError("ResourceConflictException", f"The function is {record.config.get('State')}")
        if self._submit is not None:
            qualifier = self.functions.arns.parse_function(arn).qualifier
            await self._submit(record.name, qualifier, payload.encode(), str(uuid.uuid4()))
            return
        while True:
            try:
                await self._run(record, payload.encode(), str(uuid.uuid4()), None)
                return
            except Throttled:
                await asyncio.sleep(THROTTLE_WAIT_S)

    async def dead_letter(self, firing: Firing, error: DeliveryError) -> None:
        queue = firing.target["DeadLetterConfig"]["Arn"]
        attributes = {
            "ERROR_CODE": {"DataType": "String", "StringValue": error.code},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": error.message[:1000] or "-"},
            "EXECUTION_ID": {"DataType": "String", "StringValue": f"{firing.id}-{uuid.uuid4().hex[:8]}"},
            "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(firing.attempts)},
            "SCHEDULE_ARN": {"DataType": "String", "StringValue": firing.arn},
            "TARGET_ARN": {"DataType": "String", "StringValue": str(firing.target["Arn"])},
        }
        body = str(firing.target.get("Input") or json.dumps({}))
        await self.queues.send(queue, body, attributes)
