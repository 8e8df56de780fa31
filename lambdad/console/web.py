"""HTTP plumbing of the console: JSON responses, errors, cookies, request bodies, static files."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any

from lambdad.http.app import Headers, Request

Response = tuple[int, Headers, bytes]

COOKIE = "lambdad_console"
CSRF_HEADER = "x-console-csrf"
#: The largest JSON body the console accepts (a base64 zip of the 50 MB direct-upload limit, plus slack).
MAX_BODY = 70 * 1024 * 1024

_SECURITY_HEADERS: Headers = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}


class ConsoleError(Exception):
    """An error the console API answers as ``{"error": code, "message": ...}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(status: int, body: Any, extra: Headers | None = None) -> Response:
    headers = [(b"content-type", b"application/json"), *_SECURITY_HEADERS, *(extra or [])]
    return status, headers, json.dumps(body, separators=(",", ":")).encode()


def error_response(error: ConsoleError) -> Response:
    return json_response(error.status, {"error": error.code, "message": error.message})


def session_cookie(token: str, max_age: int) -> tuple[bytes, bytes]:
    value = f"{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return b"set-cookie", value.encode()


def cookie_token(request: Request) -> str | None:
    raw = request.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400/413 ConsoleError."""
    if len(request.body) > MAX_BODY:
        raise ConsoleError(413, "RequestTooLarge", f"The request body is larger than {MAX_BODY} bytes.")
    if "application/json" not in request.headers.get("content-type", ""):
        raise ConsoleError(415, "UnsupportedMediaType", "Send the body as application/json.")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ConsoleError(400, "InvalidJson", "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ConsoleError(400, "InvalidJson", "The request body must be a JSON object.")
    return body


def field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    """``body[name]`` checked to be of ``kind``."""
    value = body.get(name)
    if value is None:
        if required:
            raise ConsoleError(400, "MissingField", f"The field '{name}' is required.")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConsoleError(400, "InvalidField", f"The field '{name}' must be a {kind.__name__}.")
    return value


def static_file(name: str) -> Response:
    """A file from ``lambdad/console/static`` (names are checked against the package's own listing)."""
    folder = resources.files("lambdad.console") / "static"
    known = {entry.name for entry in folder.iterdir() if entry.is_file()}
    if name not in known:
        return 404, [(b"content-type", b"text/plain"), *_SECURITY_HEADERS], b"Not found"
    suffix = name[name.rfind(".") :]
    headers = [
        (b"content-type", _TYPES.get(suffix, b"application/octet-stream")),
        (b"content-security-policy", _CSP),
        *_SECURITY_HEADERS,
    ]
    return 200, headers, (folder / name).read_bytes()
