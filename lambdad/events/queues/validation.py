"""SQS's own rules for queue names, queue attributes and messages, with AWS's errors and wording."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from lambdad.http.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidMessageContents,
    InvalidParameterValue,
    MissingParameter,
)

MAX_MESSAGE_BYTES = 262_144
MAX_ATTRIBUTES = 10
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_ATTRIBUTE_NAME = re.compile(r"^(?!aws\.|amazon\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)$", re.IGNORECASE)
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,256})?$")
# The characters XML 1.0 allows, which is what SQS accepts in bodies and string attributes.
_INVALID_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INVALID_CHARS_MESSAGE = (
    "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
    "#xE000 to #xFFFD | #x10000 to #x10FFFF"
)

#: Settable attributes: name -> (minimum, maximum) for integers, None for free-form strings.
RANGES: dict[str, tuple[int, int] | None] = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43_200),
    "KmsDataKeyReusePeriodSeconds": (60, 86_400),
    "RedrivePolicy": None,
    "RedriveAllowPolicy": None,
    "Policy": None,
    "KmsMasterKeyId": None,
    "SqsManagedSseEnabled": None,
}
DEFAULTS: dict[str, str] = {
    "DelaySeconds": "0",
    "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
    "SqsManagedSseEnabled": "false",
}
#: What GetQueueAttributes can name besides the settable ones.
COMPUTED = (
    "QueueArn",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
FIFO_ONLY = frozenset({"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"})


def check_queue_name(name: str) -> None:
    if name.endswith(".fifo"):
        raise InvalidParameterValue(
            "FIFO queues are not supported by lambdad yet; create a standard queue (a name without the "
            "'.fifo' suffix and without the FifoQueue attribute)."
        )
    if not _NAME.match(name):
        raise InvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )


def check_queue_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Validate settable attributes; return them normalized (RedrivePolicy as compact JSON)."""
    out = {}
    for name, value in attributes.items():
        if name in FIFO_ONLY:
            raise InvalidParameterValue(
                f"FIFO queues are not supported by lambdad yet (attribute {name}); use a standard queue."
            )
        if name not in RANGES:
            raise InvalidAttributeName(f"Unknown Attribute {name}.")
        bounds = RANGES[name]
        if bounds is not None:
            out[name] = str(_integer_in(name, value, bounds))
        elif name == "RedrivePolicy":
            out[name] = normalize_redrive_policy(value)
        else:
            out[name] = value
    return out


def _integer_in(name: str, value: str, bounds: tuple[int, int]) -> int:
    try:
        number = int(value)
    except ValueError:
        number = bounds[0] - 1
    if not bounds[0] <= number <= bounds[1]:
        raise InvalidAttributeValue(f"Invalid value for the parameter {name}.")
    return number


def normalize_redrive_policy(value: str) -> str:
    """``{"deadLetterTargetArn": ..., "maxReceiveCount": n}`` as AWS stores it; "" removes the policy."""
    if value == "":
        return ""
    try:
        doc = json.loads(value)
        arn = doc["deadLetterTargetArn"]
        count = int(doc["maxReceiveCount"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidAttributeValue(
            f"Value {value} for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid "
            "JSON map with deadLetterTargetArn and maxReceiveCount."
        ) from exc
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise InvalidAttributeValue(
            f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn."
        )
    if not 1 <= count <= 1000:
        raise InvalidAttributeValue(
            f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: "
            f"{count}, valid values are from 1 to 1000 both inclusive."
        )
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}, separators=(",", ":"))


def check_delay(delay: int | None) -> None:
    if delay is not None and not 0 <= delay <= 900:
        raise InvalidParameterValue(
            f"Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
        )


def check_message(body: str, attributes: Mapping[str, Any], max_size: int) -> dict[str, dict[str, Any]]:
    """Validate a message; return its attributes as stored (BinaryValue decoded to bytes)."""
    if body == "":
        raise MissingParameter("The request must contain the parameter MessageBody.")
    if _INVALID_CHARS.search(body):
        raise InvalidMessageContents(_INVALID_CHARS_MESSAGE)
    stored = decode_attributes(attributes)
    size = len(body.encode("utf-8")) + attributes_size(stored)
    if size > max_size:
        raise InvalidParameterValue(
            f"One or more parameters are invalid. Reason: Message must be shorter than {max_size} bytes."
        )
    return stored


def attributes_size(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes attributes add to a message's size: name, type and value of each, as AWS counts them."""
    size = 0
    for name, value in attributes.items():
        size += len(name.encode()) + len(str(value["DataType"]).encode())
        raw = value.get("StringValue")
        size += len(raw.encode()) if raw is not None else len(value.get("BinaryValue") or b"")
    return size


def decode_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidParameterValue(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum [{MAX_ATTRIBUTES}]."
        )
    return {name: _decode_attribute(name, value) for name, value in attributes.items()}


def _decode_attribute(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    if not _ATTRIBUTE_NAME.match(name):
        raise InvalidParameterValue(f"Message attribute name '{name}' is invalid.")
    data_type = str(value.get("DataType") or "")
    if not _DATA_TYPE.match(data_type):
        raise InvalidParameterValue(
            f"The message attribute '{name}' has an invalid message attribute type, the set of supported "
            "type prefixes is Binary, Number, and String."
        )
    if data_type.startswith("Binary"):
        return {"DataType": data_type, "BinaryValue": _binary(name, value.get("BinaryValue"))}
    text = value.get("StringValue")
    if not isinstance(text, str) or text == "":
        raise InvalidParameterValue(
            f"The message attribute '{name}' must contain non-empty message attribute value."
        )
    if _INVALID_CHARS.search(text):
        raise InvalidMessageContents(_INVALID_CHARS_MESSAGE)
    if data_type.startswith("Number"):
        _check_number(name, text)
    return {"DataType": data_type, "StringValue": text}


def _binary(name: str, raw: Any) -> bytes:
    if isinstance(raw, bytes) and raw:
        return raw
    if isinstance(raw, str) and raw:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameterValue(
                f"The message attribute '{name}' has an invalid binary value."
            ) from exc
    raise InvalidParameterValue(
        f"The message attribute '{name}' must contain non-empty message attribute value."
    )


def _check_number(name: str, text: str) -> None:
    try:
        float(text)
    except ValueError as exc:
        raise InvalidParameterValue(
            f"Can't cast the value of message (user) attribute '{name}' to a number."
        ) from exc
