"""Where a finished asynchronous invocation's result goes: destinations, or the dead-letter queue.

On success, the EventInvokeConfig's OnSuccess destination; on failure (retries exhausted or event too
old), its OnFailure destination, else the function's DeadLetterConfig. A destination is another
function (invoked asynchronously, so durably) or a queue, and receives AWS's invocation record; the
dead-letter queue receives the original payload with message attributes RequestID, ErrorCode and
ErrorMessage, as AWS sends them. A failed delivery is counted (DestinationDeliveryFailures,
DeadLetterErrors) and logged; it never blocks the async queue.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Protocol

from lambdad.events.queues.store import QueueStore
from lambdad.functions.arns import Arns
from lambdad.invoke.async_queue import AsyncDispatcher, Result
from lambdad.observe.metrics import MetricStore
from lambdad.store.base import FunctionRecord

log = logging.getLogger("lambdad.destinations")


class Resolver(Protocol):
    async def resolve(self, name: str, qualifier: str | None) -> FunctionRecord: ...


def service_of(arn: str) -> str:
    """The service part of an ARN: ``arn:aws:sqs:...`` -> ``sqs``."""
    parts = arn.split(":")
    return parts[2] if len(parts) > 5 and parts[0] == "arn" else ""


def _parsed(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data.decode(errors="replace")


def _iso(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def invocation_record(result: Result, function_arn: str, now: float) -> dict[str, Any]:
    """AWS's record of one asynchronous invocation, as destinations receive it."""
    doc: dict[str, Any] = {
        "version": "1.0",
        "timestamp": _iso(now),
        "requestContext": {
            "requestId": result.event.request_id,
            "functionArn": function_arn,
            "condition": result.condition,
            "approximateInvokeCount": result.event.attempts,
        },
        "requestPayload": _parsed(result.payload),
    }
    outcome = result.outcome
    if outcome is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": result.executed_version}
        if outcome.kind != "ok":
            context["functionError"] = "Unhandled"
        doc["responseContext"] = context
        doc["responsePayload"] = _parsed(outcome.payload)
    return doc


def dead_letter_attributes(result: Result) -> dict[str, dict[str, str]]:
    """The message attributes AWS puts on a dead-letter message."""
    message = "Event age exceeded before the event could be processed."
    if result.outcome is not None:
        body = _parsed(result.outcome.payload)
        found = body.get("errorMessage") if isinstance(body, dict) else None
        message = str(found) if found else result.outcome.payload.decode(errors="replace")
    return {
        "RequestID": {"DataType": "String", "StringValue": result.event.request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": message[:262_000] or "Unhandled"},
    }


class Destinations:
    """Delivers results; installed as the dispatcher's ``on_result``."""

    def __init__(
        self,
        arns: Arns,
        queues: QueueStore,
        dispatcher: AsyncDispatcher,
        functions: Resolver,
        metrics: MetricStore,
    ) -> None:
        self.arns = arns
        self.queues = queues
        self.dispatcher = dispatcher
        self.functions = functions
        self.metrics = metrics
        dispatcher.on_result = self.deliver

    async def deliver(self, result: Result, config: dict[str, Any], record: FunctionRecord | None) -> None:
        event = result.event
        key = "OnSuccess" if result.condition == "Success" else "OnFailure"
        target = ((config.get("DestinationConfig") or {}).get(key) or {}).get("Destination")
        if target:
            doc = invocation_record(result, self.arns.function(event.function, event.qualifier), time.time())
            await self._send(target, json.dumps(doc), None, "DestinationDeliveryFailures", event.function)
        elif result.condition != "Success":
            await self._dead_letter(result, record)

    async def _dead_letter(self, result: Result, record: FunctionRecord | None) -> None:
        name = result.event.function
        if record is None:
            try:
                record = await self.functions.resolve(name, None)
            except Exception:
                return
        target = (record.config.get("DeadLetterConfig") or {}).get("TargetArn")
        if target:
            body = result.payload.decode(errors="replace")
            await self._send(target, body, dead_letter_attributes(result), "DeadLetterErrors", name)

    async def _send(
        self, target: str, body: str, attributes: dict[str, Any] | None, failure_metric: str, function: str
    ) -> None:
        try:
            service = service_of(target)
            if service == "sqs":
                await self.queues.send(target, body, attributes=attributes)
            elif service == "lambda" and attributes is None:
                ref = self.arns.parse_function(target)
                await self.dispatcher.submit(ref.name, ref.qualifier, body.encode(), str(uuid.uuid4()))
            else:
                raise ValueError(f"lambdad cannot deliver to {target}")
        except Exception as exc:
            log.warning(
                "async result delivery failed",
                extra={"function": function, "target": target, "error": str(exc)},
            )
            self.metrics.record(failure_metric, {"FunctionName": function}, 1, "Count")
