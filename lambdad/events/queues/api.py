"""The SQS API (json protocol, ``AmazonSQS``) over the queue store.

Handlers unpack the operation's input (already checked against botocore's model by the app), apply
SQS's request-level rules (batch shape, ranges of receive parameters) and shape the output. Queue URLs
are built from the request's Host header, so the URL a client gets back reaches this server.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from lambdad.events.queues import validation
from lambdad.events.queues.md5 import md5_of_attributes
from lambdad.events.queues.store import Message, Outgoing, QueueStore, prepare
from lambdad.http import awsmodel
from lambdad.http.app import Handler, JsonService, Request, json_service
from lambdad.http.errors import (
    AwsError,
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidBatchEntryId,
    InvalidParameterValue,
    TooManyEntriesInBatchRequest,
)

Params = dict[str, Any]
Output = Mapping[str, Any] | None

OPERATIONS = frozenset(
    {
        "CreateQueue",
        "GetQueueUrl",
        "ListQueues",
        "DeleteQueue",
        "GetQueueAttributes",
        "SetQueueAttributes",
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "PurgeQueue",
        "TagQueue",
        "UntagQueue",
        "ListQueueTags",
    }
)
MAX_BATCH = 10
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def queues_service(store: QueueStore) -> JsonService:
    """Every supported SQS operation, by its model name."""
    return json_service(_model(), _QueueApi(store).handlers())


def _model() -> dict[str, Any]:
    """botocore's SQS model, less one enum AWS does not enforce.

    ``AttributeNameList`` (ReceiveMessage's deprecated AttributeNames, and GetQueueAttributes') is
    modeled as queue attribute names, yet SQS accepts message system attributes there (SentTimestamp,
    ...), and answers unknown names with InvalidAttributeName rather than a ValidationException.
    """
    model = awsmodel.load_model("sqs")
    shapes = dict(model["shapes"])
    names = dict(shapes["AttributeNameList"])
    names["member"] = {"shape": "String"}
    shapes["AttributeNameList"] = names
    return {**model, "shapes": shapes}


class _QueueApi:
    def __init__(self, store: QueueStore) -> None:
        self.store = store

    def handlers(self) -> dict[str, Handler]:
        return {name: getattr(self, _snake(name)) for name in OPERATIONS}

    def _url(self, name: str, request: Request) -> str:
        return self.store.queue_url(name, request.headers.get("host"))

    # --- queues -----------------------------------------------------------------------------------

    async def create_queue(self, p: Params, request: Request) -> Output:
        await self.store.create_queue(p["QueueName"], p.get("Attributes"), p.get("tags"))
        return {"QueueUrl": self._url(p["QueueName"], request)}

    async def get_queue_url(self, p: Params, request: Request) -> Output:
        queue = await self.store.queue(p["QueueName"])
        return {"QueueUrl": self._url(queue.name, request)}

    async def list_queues(self, p: Params, request: Request) -> Output:
        limit = p.get("MaxResults")
        if limit is not None and not 1 <= limit <= 1000:
            raise InvalidParameterValue(
                f"Value {limit} for parameter MaxResults is invalid. Reason: MaxResults must be an integer "
                "between 1 and 1000."
            )
        after = _decode_token(p["NextToken"]) if p.get("NextToken") else ""
        names = await self.store.list_queues(p.get("QueueNamePrefix"), after, (limit or 1000) + 1)
        out: Params = {}
        page = names[: limit or 1000]
        if page:
            out["QueueUrls"] = [self._url(name, request) for name in page]
        if limit is not None and len(names) > limit:
            out["NextToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
        return out

    async def delete_queue(self, p: Params, _: Request) -> Output:
        await self.store.delete_queue(p["QueueUrl"])
        return None

    async def purge_queue(self, p: Params, _: Request) -> Output:
        await self.store.purge_queue(p["QueueUrl"])
        return None

    async def get_queue_attributes(self, p: Params, _: Request) -> Output:
        attributes = await self.store.get_attributes(p["QueueUrl"], p.get("AttributeNames") or [])
        return {"Attributes": attributes} if attributes else {}

    async def set_queue_attributes(self, p: Params, _: Request) -> Output:
        await self.store.set_attributes(p["QueueUrl"], p["Attributes"])
        return None

    async def tag_queue(self, p: Params, _: Request) -> Output:
        await self.store.tag_queue(p["QueueUrl"], p["Tags"])
        return None

    async def untag_queue(self, p: Params, _: Request) -> Output:
        await self.store.untag_queue(p["QueueUrl"], p["TagKeys"])
        return None

    async def list_queue_tags(self, p: Params, _: Request) -> Output:
        queue = await self.store.queue(p["QueueUrl"])
        return {"Tags": queue.tags} if queue.tags else {}

    # --- sending ----------------------------------------------------------------------------------

    async def send_message(self, p: Params, _: Request) -> Output:
        queue = await self.store.queue(p["QueueUrl"])
        message = prepare(queue, p["MessageBody"], p.get("MessageAttributes") or {}, p.get("DelaySeconds"))
        await self.store.send_prepared(queue.name, [message])
        return _sent(message)

    async def send_message_batch(self, p: Params, _: Request) -> Output:
        entries = p["Entries"]
        _check_batch(entries, "SendMessageBatchRequestEntry")
        total = sum(_entry_size(e) for e in entries)
        if total > validation.MAX_MESSAGE_BYTES:
            raise BatchRequestTooLong(
                f"Batch requests cannot be longer than {validation.MAX_MESSAGE_BYTES} bytes. "
                f"You have sent {total} bytes."
            )
        queue = await self.store.queue(p["QueueUrl"])
        ready: list[tuple[str, Outgoing]] = []
        failed: list[Params] = []
        for entry in entries:
            try:
                message = prepare(
                    queue,
                    entry["MessageBody"],
                    entry.get("MessageAttributes") or {},
                    entry.get("DelaySeconds"),
                )
            except AwsError as error:
                failed.append(_failure(entry["Id"], error))
            else:
                ready.append((entry["Id"], message))
        if ready:
            await self.store.send_prepared(queue.name, [m for _, m in ready])
        return {"Successful": [{"Id": i, **_sent(m)} for i, m in ready], "Failed": failed}

    # --- receiving --------------------------------------------------------------------------------

    async def receive_message(self, p: Params, _: Request) -> Output:
        count = _optional_range(p, "MaxNumberOfMessages", 1, 10, "Must be between 1 and 10, if provided.")
        hide = _optional_range(p, "VisibilityTimeout", 0, 43_200, "Must be >= 0 and <= 43200, if provided.")
        wait = _optional_range(p, "WaitTimeSeconds", 0, 20, "Must be >= 0 and <= 20, if provided.")
        messages = await self.store.receive(p["QueueUrl"], count or 1, hide, wait)
        if not messages:
            return {}
        system = set(p.get("AttributeNames") or []) | set(p.get("MessageSystemAttributeNames") or [])
        selectors = p.get("MessageAttributeNames") or []
        return {"Messages": [_wire_message(m, system, selectors) for m in messages]}

    async def delete_message(self, p: Params, _: Request) -> Output:
        await self.store.delete(p["QueueUrl"], p["ReceiptHandle"])
        return None

    async def delete_message_batch(self, p: Params, _: Request) -> Output:
        async def delete(entry: Params) -> None:
            await self.store.delete(p["QueueUrl"], entry["ReceiptHandle"])

        return await self._batch(p, "DeleteMessageBatchRequestEntry", delete)

    async def change_message_visibility(self, p: Params, _: Request) -> Output:
        await self.store.change_visibility(p["QueueUrl"], p["ReceiptHandle"], p["VisibilityTimeout"])
        return None

    async def change_message_visibility_batch(self, p: Params, _: Request) -> Output:
        async def change(entry: Params) -> None:
            timeout = entry.get("VisibilityTimeout") or 0
            await self.store.change_visibility(p["QueueUrl"], entry["ReceiptHandle"], timeout)

        return await self._batch(p, "ChangeMessageVisibilityBatchRequestEntry", change)

    async def _batch(self, p: Params, noun: str, action: Callable[[Params], Awaitable[None]]) -> Output:
        entries = p["Entries"]
        _check_batch(entries, noun)
        await self.store.queue(p["QueueUrl"])
        done: list[Params] = []
        failed: list[Params] = []
        for entry in entries:
            try:
                await action(entry)
            except AwsError as error:
                failed.append(_failure(entry["Id"], error))
            else:
                done.append({"Id": entry["Id"]})
        return {"Successful": done, "Failed": failed}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, binascii.Error) as exc:
        raise InvalidParameterValue("Invalid NextToken value.") from exc


def _optional_range(p: Params, name: str, low: int, high: int, reason: str) -> int | None:
    value = p.get(name)
    if value is not None and not low <= value <= high:
        raise InvalidParameterValue(f"Value {value} for parameter {name} is invalid. Reason: {reason}")
    return value if value is None else int(value)


def _check_batch(entries: Sequence[Params], noun: str) -> None:
    if not entries:
        raise EmptyBatchRequest(f"There should be at least one {noun} in the request.")
    if len(entries) > MAX_BATCH:
        raise TooManyEntriesInBatchRequest(
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}."
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry["Id"]
        if not _BATCH_ID.match(entry_id):
            raise InvalidBatchEntryId(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                "It can be at most 80 letters long."
            )
        if entry_id in seen:
            raise BatchEntryIdsNotDistinct(f"Id {entry_id} repeated.")
        seen.add(entry_id)


def _entry_size(entry: Params) -> int:
    size = len(str(entry.get("MessageBody", "")).encode())
    for name, value in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        if value.get("StringValue") is not None:
            size += len(str(value["StringValue"]).encode())
        else:
            size += len(str(value.get("BinaryValue") or "")) * 3 // 4
    return size


def _failure(entry_id: str, error: AwsError) -> Params:
    return {"Id": entry_id, "SenderFault": error.sender_fault, "Code": error.code, "Message": error.message}


def _sent(message: Outgoing) -> Params:
    out: Params = {"MessageId": message.message_id, "MD5OfMessageBody": message.md5_of_body}
    if message.md5_of_attributes is not None:
        out["MD5OfMessageAttributes"] = message.md5_of_attributes
    return out


def _wire_message(message: Message, system: set[str], selectors: Sequence[str]) -> Params:
    out: Params = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.md5_of_body,
        "Body": message.body,
    }
    attributes = {k: v for k, v in message.attributes.items() if "All" in system or k in system}
    if attributes:
        out["Attributes"] = attributes
    chosen = {k: v for k, v in message.message_attributes.items() if _selected(k, selectors)}
    if chosen:
        out["MD5OfMessageAttributes"] = md5_of_attributes(chosen)
        out["MessageAttributes"] = {k: _wire_attribute(v) for k, v in chosen.items()}
    return out


def _selected(name: str, selectors: Sequence[str]) -> bool:
    for selector in selectors:
        if selector in ("All", ".*") or selector == name:
            return True
        if selector.endswith(".*") and name.startswith(selector[:-1]):
            return True
    return False


def _wire_attribute(value: Mapping[str, Any]) -> Params:
    out = dict(value)
    if isinstance(out.get("BinaryValue"), bytes):
        out["BinaryValue"] = base64.b64encode(out["BinaryValue"]).decode()
    return out
