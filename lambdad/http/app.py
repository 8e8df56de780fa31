"""The application: routing by path (rest-json) and X-Amz-Target (json), SigV4, AWS error rendering.

``lambdad.http.server`` parses HTTP and calls ``App.handle`` with a whole request: every invoke
passes through here, and the work per request is a dict lookup, one regex match, the signature
check and the handler call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from lambdad.http import awsmodel, query, rpc
from lambdad.http.errors import (
    AwsError,
    InvalidRequestContentException,
    Protocol,
    RequestEntityTooLargeException,
    ServiceException,
    UnknownOperationException,
)
from lambdad.randomness import random_hex

log = logging.getLogger("lambdad.http")

Headers = list[tuple[bytes, bytes]]
#: A handler takes the parsed input and the request; returns the output dict (or None).
Handler = Callable[[dict[str, Any], "Request"], Awaitable[Mapping[str, Any] | None]]
#: A raw route answers the whole request itself: (status, headers, body).
RawRoute = Callable[["Request"], Awaitable[tuple[int, Headers, bytes]]]
Authenticator = Callable[["Request"], None]
#: A service method that takes an operation's parsed input and returns its output (or None).
ServiceCall = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | None]]


def bind(call: ServiceCall) -> Handler:
    """A handler for an operation that is exactly one service method call on its input."""

    async def handler(params: dict[str, Any], _: Request) -> Mapping[str, Any] | None:
        return await call(params)

    handler.__name__ = getattr(call, "__name__", "handler")
    return handler


DEFAULT_BODY_LIMIT = 70_167_211
BODY_LIMITS = {"Invoke": 6_291_456, "InvokeAsync": 262_144}
_OPERATION_NAMES = {"Invoke": "InvokeFunction"}
#: Members whose model constraint AWS reports with its own error instead of a ValidationException.
_SKIP_VALIDATION = frozenset({"Runtime"})


def new_request_id() -> str:
    """A random (version 4) UUID as a string, as ``str(uuid.uuid4())`` makes it, in less than half
    its time: it is made for every request."""
    h = random_hex(16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


@lru_cache(maxsize=1024)  # a client repeats its query string (a Qualifier, a presigned URL)
def parse_query(raw: bytes) -> Mapping[str, list[str]]:
    """What ``parse_qs(raw.decode("latin-1"), keep_blank_values=True)`` returns, without its
    per-piece unquoting when a piece has nothing to unquote (a presigned URL has seven pieces).
    Remembered, so the answer is shared: read it, never change it."""
    out: dict[str, list[str]] = {}
    for piece in raw.decode("latin-1").split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        if "%" in key or "+" in key:
            key = _unquote_plus(key)
        if "%" in value or "+" in value:
            value = _unquote_plus(value)
        out.setdefault(key, []).append(value)
    return out


#: A presigned URL's credential and signed-header list come again with every request of a client.
_unquote_plus = lru_cache(maxsize=4096)(unquote_plus)


class Request:
    """What handlers see of an HTTP request.

    A plain class, not a dataclass: the compiled server builds one per request, and a dataclass
    whose field has a default factory gets its __init__ as Python code."""

    def __init__(
        self,
        method: str,
        path: str,
        raw_path: bytes,
        query_string: bytes,
        headers: Mapping[str, str],
        raw_headers: Headers,
        body: bytes,
        request_id: str,
        client: tuple[str, int] | None = None,
        body_overflow: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers
        self.raw_headers = raw_headers
        self.body = body
        self.request_id = request_id
        self.client = client
        #: The body was longer than the server reads (DEFAULT_BODY_LIMIT); ``body`` holds its start.
        self.body_overflow = body_overflow
        #: Extra response headers a handler wants to add (x-amz-executed-version, ...).
        self.response_headers: Headers = []

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path}, request_id={self.request_id!r})"

    @property
    def query(self) -> Mapping[str, list[str]]:
        return parse_query(self.query_string)


@dataclass
class JsonService:
    """A service on the AWS json protocol, selected by the X-Amz-Target prefix."""

    operations: dict[str, awsmodel.Operation]
    handlers: dict[str, Handler]
    protocol: Protocol = Protocol.JSON


def json_service(model: Mapping[str, Any], handlers: dict[str, Handler]) -> JsonService:
    """A json-protocol service answering exactly the operations ``handlers`` names."""
    return JsonService(awsmodel.build_operations(model, set(handlers)), handlers)


class App:
    """The whole HTTP surface of lambdad: ``handle`` answers one parsed request."""

    def __init__(
        self,
        lambda_operations: dict[str, awsmodel.Operation],
        lambda_handlers: dict[str, Handler],
        authenticate: Authenticator,
        raw_routes: dict[str, RawRoute] | None = None,
        json_services: dict[str, JsonService] | None = None,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.router = awsmodel.RestRouter(lambda_operations)
        self.lambda_operations = lambda_operations
        self.lambda_handlers = lambda_handlers
        self.authenticate = authenticate
        self.raw_routes = raw_routes or {}
        self._raw_prefixes = tuple(self.raw_routes)
        self.json_services = json_services or {}
        #: Services on the query protocol (``POST /``, form-encoded ``Action``), by API version.
        self.query_services: dict[str, query.QueryService] = {}
        #: Function URLs: requests whose Host is ``<url-id>.lambda-url.<region>...`` go here whole.
        self.url_route: RawRoute | None = None
        #: Other rest-json services (EventBridge Scheduler), tried in order only when no Lambda route matches.
        self.rest_services: list[tuple[awsmodel.RestRouter, dict[str, Handler]]] = []
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def startup(self) -> None:
        if self.on_startup:
            await self.on_startup()

    async def shutdown(self) -> None:
        if self.on_shutdown:
            await self.on_shutdown()

    async def handle(self, request: Request) -> tuple[int, Headers, bytes]:
        """Answer one request: (status, headers, body). Errors become AWS error documents."""
        request.request_id = new_request_id()
        headers = request.headers
        protocol = Protocol.REST_JSON
        try:
            raw = self._raw_route(request.path)
            if self.url_route is not None and ".lambda-url." in headers.get("host", ""):
                raw = self.url_route
            if raw is not None:
                _check_body(request, DEFAULT_BODY_LIMIT, "request")
                status, out_headers, body = await raw(request)
            else:
                target = headers.get("x-amz-target")
                if target is not None:
                    protocol = Protocol.JSON
                    status, out_headers, body = await self._json(request, target)
                elif request.path.startswith(rpc.PREFIX):
                    protocol = Protocol.RPC_V2_CBOR
                    _check_body(request, DEFAULT_BODY_LIMIT, "request")
                    status, out_headers, body = await rpc.handle(
                        request, self.json_services, self.authenticate
                    )
                elif request.path == "/" and self.query_services:
                    protocol = Protocol.QUERY
                    _check_body(request, DEFAULT_BODY_LIMIT, "request")
                    status, out_headers, body = await query.handle(
                        request, self.query_services, self.authenticate
                    )
                else:
                    status, out_headers, body = await self._rest(request)
        except AwsError as error:
            status, out_headers, body = error.render(protocol, request.request_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request.request_id, "path": request.path})
            internal = ServiceException("An internal error occurred; see the lambdad server log.")
            status, out_headers, body = internal.render(protocol, request.request_id)
        out_headers += request.response_headers
        if not any(name == b"x-amzn-requestid" for name, _ in out_headers):
            out_headers.append((b"x-amzn-requestid", request.request_id.encode()))
        out_headers.append((b"content-length", str(len(body)).encode()))
        return status, out_headers, body

    def add_raw_route(self, prefix: str, route: RawRoute) -> None:
        """Answer every request under ``prefix`` with ``route`` (no SigV4: the route decides)."""
        self.raw_routes[prefix] = route
        self._raw_prefixes = tuple(self.raw_routes)

    def _raw_route(self, path: str) -> RawRoute | None:
        if not path.startswith(self._raw_prefixes):  # one C-level check for the common case
            return None
        for prefix, route in self.raw_routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return route
        return None

    async def _rest(self, request: Request) -> tuple[int, Headers, bytes]:
        raw_path = request.raw_path.decode("latin-1")
        query = request.query
        found = self.router.match(request.method, raw_path, query)
        handlers = self.lambda_handlers
        if found is None:
            for router, service_handlers in self.rest_services:
                found = router.match(request.method, raw_path, query)
                if found is not None:
                    handlers = service_handlers
                    break
        if found is None:
            _check_body(request, DEFAULT_BODY_LIMIT, "request")
            self.authenticate(request)
            raise UnknownOperationException(f"Unknown operation {request.method} {request.path}")
        op, labels = found
        limit = BODY_LIMITS.get(op.name, DEFAULT_BODY_LIMIT)
        _check_body(request, limit, _OPERATION_NAMES.get(op.name, op.name))
        self.authenticate(request)
        handler = handlers.get(op.name)
        if handler is None:
            raise UnknownOperationException(f"The {op.name} operation is not supported by lambdad yet.")
        params = awsmodel.parse_rest_input(op, labels, query, request.headers, request.body)
        awsmodel.validate(op, params, _SKIP_VALIDATION)
        result = await handler(params, request)
        return awsmodel.render_rest_output(op, result)

    async def _json(self, request: Request, target: str) -> tuple[int, Headers, bytes]:
        prefix, _, name = target.partition(".")
        _check_body(request, DEFAULT_BODY_LIMIT, name or "request")
        self.authenticate(request)
        service = self.json_services.get(prefix)
        handler = service.handlers.get(name) if service else None
        if service is None or handler is None:
            raise UnknownOperationException(f"Unknown operation {target}")
        try:
            params = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise InvalidRequestContentException("The request body is not valid JSON.") from exc
        if not isinstance(params, dict):
            raise InvalidRequestContentException("The request body must be a JSON object.")
        awsmodel.validate(service.operations[name], params)
        result = await handler(params, request)
        body = json.dumps(result or {}, separators=(",", ":")).encode()
        return 200, [(b"content-type", b"application/x-amz-json-1.1")], body


def _check_body(request: Request, limit: int, operation: str) -> None:
    if request.body_overflow or len(request.body) > limit:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {limit} bytes for the {operation} operation"
        )
