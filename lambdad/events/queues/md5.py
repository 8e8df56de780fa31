"""The MD5 digests SQS returns with a message, computed exactly as AWS computes them.

``MD5OfMessageBody`` is the hex MD5 of the body's UTF-8 bytes. ``MD5OfMessageAttributes`` is the hex MD5
of the attributes sorted by name, each encoded as: name, data type (each a 4-byte big-endian length
then UTF-8 bytes), one transport byte (1 for a string value, 2 for a binary one), then the value
(4-byte length then bytes). SDKs that check them (the Java SDK, for one) recompute both.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any

STRING_TRANSPORT = b"\x01"
BINARY_TRANSPORT = b"\x02"


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The digest of message attributes (values as SQS holds them: BinaryValue as bytes); None if empty."""
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        digest.update(_field(name.encode("utf-8")))
        digest.update(_field(str(value["DataType"]).encode("utf-8")))
        if value.get("StringValue") is not None:
            digest.update(STRING_TRANSPORT + _field(str(value["StringValue"]).encode("utf-8")))
        else:
            digest.update(BINARY_TRANSPORT + _field(bytes(value["BinaryValue"])))
    return digest.hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data
