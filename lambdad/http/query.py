"""The AWS query protocol: form-encoded ``Action=...&Version=...`` requests, XML responses.

Older SDKs speak it to CloudWatch. A service is chosen by its API ``Version`` and shares its
handlers with the json and rpc-v2-cbor protocols. Input is rebuilt from flattened keys
(``Dimensions.member.1.Name``) by walking botocore's input shape; output is written as
``<ActionResponse><ActionResult>...</ActionResult><ResponseMetadata/></ActionResponse>``.
Timestamps are left as the ISO 8601 strings the client sent (handlers accept every encoding) and
are written as ISO 8601 in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from lambdad.http import awsmodel
from lambdad.http.errors import InvalidAction, MissingParameter, ValidationError, ValidationException

if TYPE_CHECKING:
    from lambdad.http.app import Headers, JsonService, Request

Tree = dict[str, Any]


@dataclass
class QueryService:
    """A json service's handlers, also served over the query protocol."""

    service: JsonService
    xmlns: str


async def handle(
    request: Request, services: Mapping[str, QueryService], authenticate: Callable[[Request], None]
) -> tuple[int, Headers, bytes]:
    """Answer one query-protocol request whose body has been read."""
    authenticate(request)
    form = parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
    form += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    flat = dict(form)
    action, version = flat.pop("Action", None), flat.pop("Version", None)
    if not action:
        raise MissingParameter("The request must contain the parameter Action.")
    found = services.get(version or "")
    handler = found.service.handlers.get(action) if found else None
    if found is None or handler is None:
        raise InvalidAction(f"The action {action} is not valid for this web service.")
    op = found.service.operations[action]
    params: dict[str, Any] = {}
    if op.input_shape is not None:
        params = decode(_tree(flat), op.input_shape, op.shapes, "")
    try:
        awsmodel.validate(op, params)
    except ValidationException as exc:
        raise ValidationError(exc.message) from exc
    result = await handler(params, request)
    body = render(action, found.xmlns, result or {}, op.output_shape, op.shapes, request.request_id)
    return 200, [(b"content-type", b"text/xml")], body


def _tree(flat: Mapping[str, str]) -> Tree:
    """``{"A.member.1.B": "x"}`` -> ``{"A": {"member": {"1": {"B": "x"}}}}``."""
    root: Tree = {}
    for key, value in flat.items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(leaf), dict):
            node[leaf] = value
    return root


def _items(node: Any) -> list[Any]:
    if not isinstance(node, dict):
        return []
    try:
        return [node[k] for k in sorted(node, key=int)]
    except ValueError as exc:
        raise ValidationError("List members must be numbered 1, 2, 3, ...") from exc


def decode(node: Any, shape: awsmodel.Shape, shapes: Mapping[str, awsmodel.Shape], path: str) -> Any:
    """The value of ``shape`` from its subtree of the form."""
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(node, dict):
            return {}
        out = {}
        for member, ref in shape.get("members", {}).items():
            wire = ref.get("locationName", member)
            if wire in node:
                out[member] = decode(node[wire], shapes[ref["shape"]], shapes, f"{path}{wire}.")
        return out
    if kind == "list":
        ref = shape["member"]
        inner = (
            node
            if shape.get("flattened")
            else (node.get(ref.get("locationName", "member")) if isinstance(node, dict) else None)
        )
        return [decode(v, shapes[ref["shape"]], shapes, path) for v in _items(inner)]
    if kind == "map":
        entries = _items(node.get("entry") if isinstance(node, dict) else None)
        key_shape, value_shape = shapes[shape["key"]["shape"]], shapes[shape["value"]["shape"]]
        return {
            decode(e.get("key"), key_shape, shapes, path): decode(e.get("value"), value_shape, shapes, path)
            for e in entries
            if isinstance(e, dict)
        }
    return _scalar(node, kind, path.rstrip("."))


def _scalar(value: Any, kind: str, name: str) -> Any:
    if not isinstance(value, str):
        raise ValidationError(f"The parameter {name} must be a single value.")
    try:
        if kind in ("integer", "long"):
            return int(value)
        if kind in ("double", "float"):
            return float(value)
    except ValueError as exc:
        raise ValidationError(f"Invalid value '{value}' for parameter {name}.") from exc
    if kind == "boolean":
        return value.lower() == "true"
    return value


def render(
    action: str,
    xmlns: str,
    result: Mapping[str, Any],
    shape: awsmodel.Shape | None,
    shapes: Mapping[str, awsmodel.Shape],
    request_id: str,
) -> bytes:
    out = [f'<{action}Response xmlns="{escape(xmlns)}">']
    if shape is not None:
        out.append(f"<{action}Result>")
        _members(out, result, shape, shapes)
        out.append(f"</{action}Result>")
    out.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
    return "".join(out).encode()


def _members(
    out: list[str], value: Mapping[str, Any], shape: awsmodel.Shape, shapes: Mapping[str, awsmodel.Shape]
) -> None:
    for member, ref in shape.get("members", {}).items():
        if value.get(member) is not None:
            _xml(out, ref.get("locationName", member), value[member], shapes[ref["shape"]], shapes)


def _xml(
    out: list[str], name: str, value: Any, shape: awsmodel.Shape, shapes: Mapping[str, awsmodel.Shape]
) -> None:
    kind = shape["type"]
    if kind == "list":
        ref = shape["member"]
        inner = shapes[ref["shape"]]
        if shape.get("flattened"):
            for item in value:
                _xml(out, name, item, inner, shapes)
            return
        out.append(f"<{name}>")
        for item in value:
            _xml(out, ref.get("locationName", "member"), item, inner, shapes)
        out.append(f"</{name}>")
        return
    out.append(f"<{name}>")
    if kind == "structure":
        _members(out, value, shape, shapes)
    elif kind == "map":
        key_shape, value_shape = shapes[shape["key"]["shape"]], shapes[shape["value"]["shape"]]
        for key, item in value.items():
            if item is None:
                continue
            out.append("<entry>")
            _xml(out, "key", key, key_shape, shapes)
            _xml(out, "value", item, value_shape, shapes)
            out.append("</entry>")
    else:
        out.append(escape(_text(value, kind)))
    out.append(f"</{name}>")


def _text(value: Any, kind: str) -> str:
    if kind == "timestamp":
        when = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
        return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("double", "float"):
        return repr(float(value))
    return str(value)
