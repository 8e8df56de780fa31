"""The smithy-rpc-v2-cbor protocol: ``POST /service/<Service>/operation/<Operation>`` with CBOR bodies.

Current botocore speaks it to CloudWatch. Routing reuses the json services, keyed by the same
target prefix (``GraniteServiceVersion20100801``), so one set of handlers serves both protocols.
Timestamps arrive as CBOR tag 1 (decoded to datetimes) and leave as tag 1 with epoch seconds.
Errors are rendered by ``AwsError.render(Protocol.RPC_V2_CBOR, ...)`` at the app's one edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import cbor2

from lambdad.http import awsmodel
from lambdad.http.errors import (
    InvalidRequestContentException,
    UnknownOperationException,
    ValidationError,
    ValidationException,
)

if TYPE_CHECKING:
    from lambdad.http.app import Headers, JsonService, Request

PREFIX = "/service/"
_RESPONSE_HEADERS = ((b"content-type", b"application/cbor"), (b"smithy-protocol", b"rpc-v2-cbor"))


async def handle(
    request: Request, services: Mapping[str, JsonService], authenticate: Callable[[Request], None]
) -> tuple[int, Headers, bytes]:
    """Answer one rpc-v2-cbor request whose body has been read."""
    authenticate(request)
    service_name, _, rest = request.path[len(PREFIX) :].partition("/operation/")
    service = services.get(service_name)
    handler = service.handlers.get(rest) if service and request.method == "POST" else None
    if service is None or handler is None:
        raise UnknownOperationException(f"Unknown operation {request.method} {request.path}")
    op = service.operations[rest]
    params = decode(request.body)
    try:
        awsmodel.validate(op, params)
    except ValidationException as exc:
        raise ValidationError(exc.message) from exc
    result = await handler(params, request)
    body = b""
    if op.output_shape is not None:
        body = cbor2.dumps(encode(result or {}, op.output_shape, op.shapes))
    return 200, list(_RESPONSE_HEADERS), body


def decode(body: bytes) -> dict[str, Any]:
    """The request's CBOR map (an empty body is an empty input)."""
    if not body:
        return {}
    try:
        params = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequestContentException("The request body is not valid CBOR.") from exc
    if not isinstance(params, dict):
        raise InvalidRequestContentException("The request body must be a CBOR map.")
    return params


def encode(value: Any, shape: awsmodel.Shape, shapes: Mapping[str, awsmodel.Shape]) -> Any:
    """``value`` ready for CBOR: timestamps (epoch seconds) as tag 1, doubles as floats, no nulls."""
    kind = shape["type"]
    if kind == "structure":
        members = shape.get("members", {})
        return {
            k: encode(v, shapes[members[k]["shape"]], shapes)
            for k, v in value.items()
            if v is not None and k in members
        }
    if kind == "list":
        inner = shapes[shape["member"]["shape"]]
        return [encode(v, inner, shapes) for v in value]
    if kind == "map":
        inner = shapes[shape["value"]["shape"]]
        return {k: encode(v, inner, shapes) for k, v in value.items() if v is not None}
    if kind == "timestamp" and isinstance(value, int | float):
        return cbor2.CBORTag(1, value)
    if kind in ("double", "float") and isinstance(value, int):
        return float(value)
    return value
