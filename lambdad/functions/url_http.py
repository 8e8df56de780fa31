"""Requests to function URLs: auth, CORS, the payload format 2.0 event and the response mapping.

The App hands a request here when its Host header names ``<url-id>.lambda-url.<region>...``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

from lambdad.functions.policies import PolicyService, allows
from lambdad.functions.urls import UrlService
from lambdad.http.app import Headers, Request
from lambdad.http.errors import AwsError
from lambdad.store.base import FunctionRecord

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form",
)


class Outcome(Protocol):
    kind: str
    payload: bytes


class Invoker(Protocol):
    async def resolve(self, identifier: str, qualifier: str | None = None) -> FunctionRecord: ...

    async def run(
        self, record: FunctionRecord, payload: bytes, request_id: str, client_context: str | None
    ) -> tuple[Any, list[str]]: ...


def _json(status: int, doc: Mapping[str, Any] | None) -> tuple[int, Headers, bytes]:
    return status, [(b"content-type", b"application/json")], json.dumps(doc).encode()


FORBIDDEN = (403, [(b"content-type", b"application/json")], b'{"Message":"Forbidden"}')


def event(request: Request, url_id: str) -> dict[str, Any]:
    """The payload format 2.0 event AWS sends for a function URL request."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in request.raw_headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_query = request.query_string.decode("latin-1")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", "")
    binary = bool(request.body) and not content_type.startswith(_TEXT_TYPES)
    now = time.time()
    doc: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": headers.get("host", ""),
            "domainPrefix": url_id,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.client[0] if request.client else "",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": binary,
    }
    if cookies:
        doc["cookies"] = cookies
    if query:
        doc["queryStringParameters"] = query
    if request.body:
        doc["body"] = (
            base64.b64encode(request.body).decode() if binary else request.body.decode("utf-8", "replace")
        )
    return doc


def response(payload: bytes) -> tuple[int, Headers, bytes]:
    """Map the function's result back: ``{statusCode, headers, cookies, body, isBase64Encoded}`` or any JSON."""
    try:
        result = json.loads(payload)
    except ValueError:
        return 200, [(b"content-type", b"application/json")], payload
    if not isinstance(result, dict) or "statusCode" not in result:
        return (
            200,
            [(b"content-type", b"application/json")],
            payload if not isinstance(result, str) else result.encode(),
        )
    headers: Headers = [
        (str(k).lower().encode(), str(v).encode()) for k, v in (result.get("headers") or {}).items()
    ]
    headers += [(b"set-cookie", str(c).encode()) for c in result.get("cookies") or []]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", b"application/json"))
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(str(body))
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return int(result["statusCode"]), headers, data


def _cors_headers(cors: Mapping[str, Any] | None, origin: str | None, preflight: bool) -> Headers:
    if not cors or not origin:
        return []
    origins = cors.get("AllowOrigins") or []
    if "*" not in origins and origin not in origins:
        return []
    out: Headers = [(b"access-control-allow-origin", ("*" if "*" in origins else origin).encode())]
    if cors.get("AllowCredentials"):
        out.append((b"access-control-allow-credentials", b"true"))
    if cors.get("ExposeHeaders") and not preflight:
        out.append((b"access-control-expose-headers", ",".join(cors["ExposeHeaders"]).encode()))
    if preflight:
        if cors.get("AllowMethods"):
            out.append((b"access-control-allow-methods", ",".join(cors["AllowMethods"]).encode()))
        if cors.get("AllowHeaders"):
            out.append((b"access-control-allow-headers", ",".join(cors["AllowHeaders"]).encode()))
        if cors.get("MaxAge") is not None:
            out.append((b"access-control-max-age", str(cors["MaxAge"]).encode()))
    return out


class UrlHandler:
    """The raw route of every function URL."""

    def __init__(
        self,
        urls: UrlService,
        policies: PolicyService,
        invoker: Invoker,
        authenticate: Callable[[Request], None],
    ) -> None:
        self.urls = urls
        self.policies = policies
        self.invoker = invoker
        self.authenticate = authenticate

    async def __call__(self, request: Request) -> tuple[int, Headers, bytes]:
        url_id = request.headers.get("host", "").split(".", 1)[0]
        found = await self.urls.lookup(url_id)
        if found is None:
            return _json(404, {"Message": None})
        name, qualifier, config = found
        origin = request.headers.get("origin")
        cors = config.get("Cors")
        if request.method == "OPTIONS" and origin and "access-control-request-method" in request.headers:
            return 200, _cors_headers(cors, origin, preflight=True), b""
        if not await self._authorized(request, name, qualifier, config["AuthType"]):
            return FORBIDDEN
        try:
            record = await self.invoker.resolve(name, qualifier or None)
            outcome, _ = await self.invoker.run(
                record, json.dumps(event(request, url_id)).encode(), request.request_id, None
            )
        except AwsError as error:
            status = 429 if error.status == 429 else 502
            return _json(status, {"Message": error.message})
        if outcome.kind != "ok":
            return _json(502, {"Message": "Internal Server Error"})
        status, headers, body = response(outcome.payload)
        return status, headers + _cors_headers(cors, origin, preflight=False), body

    async def _authorized(self, request: Request, name: str, qualifier: str, auth_type: str) -> bool:
        if auth_type == "AWS_IAM":
            # Signed by this server's own account: identity policies of the owner allow everything.
            try:
                self.authenticate(request)
            except AwsError:
                return False
            return True
        policy = await self.policies.policy_of(name, qualifier or None)
        context = {"lambda:FunctionUrlAuthType": auth_type, "lambda:InvokedViaFunctionUrl": "true"}
        return allows(policy, "lambda:InvokeFunctionUrl", context=context) and allows(
            policy, "lambda:InvokeFunction", context=context
        )
