"""botocore's service models as the spec for routing, parsing, validation and serialization.

botocore ships the exact API shapes of every AWS service. Reading them here, once at start-up, keeps
our wire format true to what the SDKs send and expect: the route table, where each input member lives
(URI label, query string, header, body), the constraints AWS validates (length, range, pattern, enum)
and where each output member goes. Per request, only precompiled lookups run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import botocore.loaders

from lambdad.http.errors import InvalidRequestContentException, ValidationException

Shape = dict[str, Any]
_loader = botocore.loaders.Loader()


def load_model(service: str, api_version: str | None = None) -> dict[str, Any]:
    """Load botocore's service-2 model for ``service`` (the newest API version by default)."""
    model: dict[str, Any] = _loader.load_service_model(service, "service-2", api_version)
    return model


@dataclass
class Operation:
    """One API operation with everything needed to parse its input and render its output."""

    name: str
    method: str
    status: int
    input_shape: Shape | None
    output_shape: Shape | None
    shapes: Mapping[str, Shape]
    path_regex: re.Pattern[str] | None = None
    required_query: dict[str, str] = field(default_factory=dict)
    #: input members by location, precomputed: (member name, wire name, shape)
    uri_members: list[tuple[str, str, Shape]] = field(default_factory=list)
    query_members: list[tuple[str, str, Shape]] = field(default_factory=list)
    header_members: list[tuple[str, str, Shape]] = field(default_factory=list)
    body_members: list[tuple[str, str, Shape]] = field(default_factory=list)
    payload_member: str | None = None
    #: output members, precomputed: (member name, where it goes, wire name) where "where" is one
    #: of _HEADER, _STATUS, _PAYLOAD, _BODY and a header's wire name is its lower-case bytes
    output_members: list[tuple[str, int, Any]] = field(default_factory=list)
    output_payload: str | None = None

    def shape(self, ref: Mapping[str, Any]) -> Shape:
        return self.shapes[ref["shape"]]


#: Bound on the remembered route matches and valid inputs (cleared when reached).
MEMO_SIZE = 4096
_VALID_INPUTS: set[tuple[Any, ...]] = set()


def _compile_uri(uri: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """Turn ``/2015-03-31/functions/{FunctionName}/code?x=y`` into a regex and required query."""
    path, _, query = uri.partition("?")
    required = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        required[key] = value
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", path.rstrip("/")):
        if piece.startswith("{"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            label = label.rstrip("+")
            pattern += f"(?P<{label}>{'.+' if greedy else '[^/]+'})"
        else:
            pattern += re.escape(piece)
    return re.compile(pattern + "/?$"), required


def build_operations(model: Mapping[str, Any], names: set[str] | None = None) -> dict[str, Operation]:
    """Precompute every operation of ``model`` (or only ``names``)."""
    shapes = model["shapes"]
    operations = {}
    for name, spec in model["operations"].items():
        if names is not None and name not in names:
            continue
        http = spec.get("http", {})
        op = Operation(
            name=name,
            method=http.get("method", "POST"),
            status=http.get("responseCode", 200),
            input_shape=shapes[spec["input"]["shape"]] if "input" in spec else None,
            output_shape=shapes[spec["output"]["shape"]] if "output" in spec else None,
            shapes=shapes,
        )
        if "requestUri" in http and model["metadata"]["protocol"] == "rest-json":
            op.path_regex, op.required_query = _compile_uri(http["requestUri"])
        _classify_members(op)
        operations[name] = op
    return operations


_HEADER, _STATUS, _PAYLOAD, _BODY = range(4)


def _classify_members(op: Operation) -> None:
    if op.output_shape is not None:
        op.output_payload = op.output_shape.get("payload")
        for member, ref in op.output_shape.get("members", {}).items():
            location = ref.get("location")
            if location == "header":
                op.output_members.append((member, _HEADER, ref.get("locationName", member).lower().encode()))
            elif location == "statusCode":
                op.output_members.append((member, _STATUS, member))
            elif member == op.output_payload:
                op.output_members.append((member, _PAYLOAD, member))
            else:
                op.output_members.append((member, _BODY, ref.get("locationName", member)))
    if op.input_shape is None:
        return
    op.payload_member = op.input_shape.get("payload")
    for member, ref in op.input_shape.get("members", {}).items():
        wire = ref.get("locationName", member)
        entry = (member, wire, op.shape(ref))
        location = ref.get("location")
        if location == "uri":
            op.uri_members.append(entry)
        elif location == "querystring":
            op.query_members.append(entry)
        elif location == "header":
            op.header_members.append((member, wire.lower(), op.shape(ref)))
        elif member != op.payload_member:
            op.body_members.append(entry)


class RestRouter:
    """Matches (method, raw path, query) to a rest-json operation and its URI labels.

    Operations are bucketed by method and the first ``prefix_segments`` segments of their path,
    which must hold no label (Lambda's ``/2015-03-31/functions``; Scheduler's ``/schedules``).
    """

    def __init__(self, operations: Mapping[str, Operation], prefix_segments: int = 2) -> None:
        self._prefix_end = prefix_segments + 1  # the path's leading "/" makes an empty first part
        self._by_prefix: dict[tuple[str, str], list[Operation]] = {}
        #: (method, path) -> match, for buckets where the query never decides (every invoke of a
        #: function is the same path: one dict lookup instead of a regex and label unquoting).
        self._matched: dict[tuple[str, str], tuple[Operation, dict[str, str]]] = {}
        for op in operations.values():
            if op.path_regex is None:
                continue
            key = (op.method, self._prefix(op.path_regex.pattern.replace("\\", "")))
            self._by_prefix.setdefault(key, []).append(op)
        #: Buckets whose match never depends on the query: their matches can be remembered.
        self._query_free = {
            key for key, ops in self._by_prefix.items() if not any(o.required_query for o in ops)
        }
        for ops in self._by_prefix.values():
            # Operations that demand a query parameter are tried first; longer patterns before shorter.
            ops.sort(key=lambda o: (not o.required_query, -len(o.path_regex.pattern)))  # type: ignore[union-attr]

    def _prefix(self, path: str) -> str:
        return "/".join(path.split("/")[: self._prefix_end])

    def match(
        self, method: str, path: str, query: Mapping[str, list[str]]
    ) -> tuple[Operation, dict[str, str]] | None:
        cached = self._matched.get((method, path))
        if cached is not None:
            return cached[0], dict(cached[1])
        bucket = (method, self._prefix(path))
        for op in self._by_prefix.get(bucket, ()):
            assert op.path_regex is not None
            found = op.path_regex.match(path)
            if found is None:
                continue
            if any(query.get(k, [None])[0] != v for k, v in op.required_query.items()):
                continue
            labels = {k: unquote(v) for k, v in found.groupdict().items()}
            if bucket in self._query_free:
                if len(self._matched) >= MEMO_SIZE:
                    self._matched.clear()
                self._matched[(method, path)] = (op, labels)
            return op, dict(labels)
        return None


# ---------------------------------------------------------------------------------------------
# Input parsing


def _scalar(value: str, shape: Shape) -> Any:
    kind = shape["type"]
    try:
        if kind in ("integer", "long"):
            return int(value)
        if kind == "boolean":
            return value.lower() == "true"
        if kind in ("double", "float"):
            return float(value)
    except ValueError as exc:
        raise ValidationException(f"Invalid value '{value}' for a {kind} parameter.") from exc
    return value


def parse_rest_input(
    op: Operation,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Build the operation's input dict from a rest-json request."""
    params: dict[str, Any] = {}
    for member, wire, shape in op.uri_members:
        if wire in labels:
            params[member] = _scalar(labels[wire], shape)
    for member, wire, shape in op.query_members:
        values = query.get(wire)
        if values is None:
            continue
        if shape["type"] == "list":
            params[member] = [_scalar(v, op.shape(shape["member"])) for v in values]
        else:
            params[member] = _scalar(values[0], shape)
    for member, wire, shape in op.header_members:
        if wire in headers:
            params[member] = _scalar(headers[wire], shape)
    if op.payload_member is not None:
        if body:
            params[op.payload_member] = body
        return params
    if op.body_members and body:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestContentException(
                "Could not parse request body into json: Could not parse payload into json"
            ) from exc
        if not isinstance(doc, dict):
            raise InvalidRequestContentException("Could not parse request body into json: expected an object")
        for member, wire, shape in op.body_members:
            if wire in doc:
                params[member] = _decode_json_value(doc[wire], shape, op.shapes)
    return params


def _decode_json_value(value: Any, shape: Shape, shapes: Mapping[str, Shape]) -> Any:
    """Convert JSON values into Python ones where the wire encoding differs (blobs are base64)."""
    kind = shape["type"]
    if value is None:
        return None
    if kind == "blob":
        if not isinstance(value, str):
            raise InvalidRequestContentException("Could not parse request body into json: blob expected")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise InvalidRequestContentException(
                "Could not parse request body into json: Could not decode base64 blob"
            ) from exc
    if kind == "structure" and isinstance(value, dict):
        members = shape.get("members", {})
        return {
            k: _decode_json_value(v, shapes[members[k]["shape"]], shapes) if k in members else v
            for k, v in value.items()
        }
    if kind == "list" and isinstance(value, list):
        inner = shapes[shape["member"]["shape"]]
        return [_decode_json_value(v, inner, shapes) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Validation, as AWS's front end reports it ("1 validation error detected: ...")


def _wire_path(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes):
        return "java.nio.HeapByteBuffer"
    return str(value)


def _check(value: Any, shape: Shape, path: str, shapes: Mapping[str, Shape], out: list[str]) -> None:
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(
                f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: Member must be an object"
            )
            return
        for member, ref in shape.get("members", {}).items():
            if member in value and value[member] is not None:
                sub = f"{path}.{_wire_path(member)}" if path else _wire_path(member)
                _check(value[member], shapes[ref["shape"]], sub, shapes, out)
        return
    problems = _constraint_problems(value, shape, kind)
    if problems:
        joined = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        out.append(f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: {joined}")
        return
    if kind == "list" and isinstance(value, list):
        inner = shapes[shape["member"]["shape"]]
        if inner["type"] in _SCALARS:
            # AWS reports a list of scalars once, at the list, naming every constraint of its members.
            if any(_constraint_problems(item, inner, inner["type"]) for item in value):
                every = ", ".join([*_all_constraints(inner), "Member must not be null"])
                out.append(
                    f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy constraint: [{every}]"
                )
            return
        for index, item in enumerate(value):
            _check(item, inner, f"{path}.{index + 1}.member", shapes, out)
    elif kind == "map" and isinstance(value, dict):
        key_shape = shapes[shape["key"]["shape"]]
        value_shape = shapes[shape["value"]["shape"]]
        if any(_constraint_problems(key, key_shape, key_shape["type"]) for key in value):
            out.append(
                f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: "
                f"Map keys must satisfy constraint: [{', '.join(_all_constraints(key_shape))}]"
            )
        if value_shape["type"] in _SCALARS:
            if any(_constraint_problems(item, value_shape, value_shape["type"]) for item in value.values()):
                every = ", ".join([*_all_constraints(value_shape), "Member must not be null"])
                out.append(
                    f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: "
                    f"Map value must satisfy constraint: [{every}]"
                )
            return
        for key, item in value.items():
            _check(item, value_shape, f"{path}.{key}.member", shapes, out)


_SCALARS = frozenset({"string", "integer", "long", "boolean", "timestamp", "blob", "double", "float"})


def _all_constraints(shape: Shape) -> list[str]:
    """Every constraint of a list member's or map key's/value's shape, as AWS lists them when any
    member breaks one (in the order of :func:`_constraint_problems`)."""
    kind = shape["type"]
    out = []
    noun = "length" if kind in ("string", "blob", "list", "map") else "value"
    if "max" in shape:
        out.append(f"Member must have {noun} less than or equal to {shape['max']}")
    if "min" in shape:
        out.append(f"Member must have {noun} greater than or equal to {shape['min']}")
    if "enum" in shape:
        out.append(f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
    if "pattern" in shape:
        out.append(f"Member must satisfy regular expression pattern: {shape['pattern']}")
    return out


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(source: str) -> re.Pattern[str] | None:
    compiled = _PATTERNS.get(source)
    if compiled is None:
        try:
            compiled = re.compile(source)
        except re.error:
            return None
        _PATTERNS[source] = compiled
    return compiled


def _constraint_problems(value: Any, shape: Shape, kind: str) -> list[str]:
    problems = []
    if kind in ("string", "blob", "list", "map") and hasattr(value, "__len__"):
        size = len(value)
        if "max" in shape and size > shape["max"]:
            problems.append(f"Member must have length less than or equal to {shape['max']}")
        if "min" in shape and size < shape["min"]:
            problems.append(f"Member must have length greater than or equal to {shape['min']}")
    if kind in ("integer", "long") and isinstance(value, int):
        if "max" in shape and value > shape["max"]:
            problems.append(f"Member must have value less than or equal to {shape['max']}")
        if "min" in shape and value < shape["min"]:
            problems.append(f"Member must have value greater than or equal to {shape['min']}")
    if kind == "string" and isinstance(value, str):
        if "enum" in shape and value not in shape["enum"]:
            problems.append(f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
        compiled = _pattern(shape["pattern"]) if "pattern" in shape else None
        if compiled is not None and compiled.fullmatch(value) is None:
            problems.append(f"Member must satisfy regular expression pattern: {shape['pattern']}")
    return problems


def validate(op: Operation, params: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> None:
    """Raise ValidationException listing every constraint ``params`` break, as AWS words it.

    Inputs of scalars only (an invoke's name, type and qualifier; the payload is not validated)
    that passed once are remembered, so the same invoke is not checked member by member again.
    """
    if op.input_shape is None:
        return
    try:
        # The type is part of the key: True == 1 == 1.0, but only one of them is a valid boolean.
        key = (op.name, skip, *((k, type(v), v) for k, v in params.items() if k != op.payload_member))
        if key in _VALID_INPUTS:
            return
    except TypeError:  # a list or map member: not remembered
        key = None
    _validate(op, params, skip)
    if key is not None:
        if len(_VALID_INPUTS) >= MEMO_SIZE:
            _VALID_INPUTS.clear()
        _VALID_INPUTS.add(key)


def _validate(op: Operation, params: Mapping[str, Any], skip: frozenset[str]) -> None:
    assert op.input_shape is not None
    out: list[str] = []
    members = op.input_shape.get("members", {})
    for name in op.input_shape.get("required", []):
        if params.get(name) is None and name not in skip:
            out.append(
                f"Value null at '{_wire_path(name)}' failed to satisfy constraint: Member must not be null"
            )
    for member, ref in members.items():
        if member in skip or params.get(member) is None or member == op.payload_member:
            continue
        _check(params[member], op.shape(ref), _wire_path(member), op.shapes, out)
    if out:
        noun = "error" if len(out) == 1 else "errors"
        raise ValidationException(f"{len(out)} validation {noun} detected: " + "; ".join(out))


# ---------------------------------------------------------------------------------------------
# Output serialization


Handler = Callable[..., Any]


def render_rest_output(
    op: Operation, result: Mapping[str, Any] | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Split a handler's result dict into status, headers and a JSON (or raw payload) body."""
    status = op.status
    headers: list[tuple[bytes, bytes]] = []
    if op.output_shape is None or result is None:
        return status, headers, b""
    body_doc: dict[str, Any] = {}
    payload_name = op.output_payload
    raw: bytes | None = None
    for member, where, wire in op.output_members:
        value = result.get(member)
        if value is None:
            continue
        if where == _HEADER:
            headers.append((wire, str(value).encode()))
        elif where == _STATUS:
            status = int(value)
        elif where == _PAYLOAD:
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        else:
            body_doc[wire] = value
    if status == 204:  # a 204 has no body: bytes sent anyway corrupt the next response on the connection
        return status, headers, b""
    if raw is not None:
        return status, headers, raw
    if payload_name is not None:  # a raw-payload operation without a payload (Invoke's 202): no body
        return status, headers, b""
    headers.append((b"content-type", b"application/json"))
    return status, headers, json.dumps(body_doc, separators=(",", ":")).encode()
