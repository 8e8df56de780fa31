"""The ``/console`` route: static pages, sign-in and sign-out, and the session gate on the JSON API."""

from __future__ import annotations

import logging

from lambdad.console.api import ConsoleApi, Services
from lambdad.console.sessions import SESSION_IDLE_S, Session, Sessions, csrf_ok
from lambdad.console.web import (
    CSRF_HEADER,
    ConsoleError,
    Response,
    cookie_token,
    error_response,
    field,
    json_body,
    json_response,
    session_cookie,
    static_file,
)
from lambdad.http.app import App, Request
from lambdad.http.auth import Credentials

log = logging.getLogger("lambdad.console")

PREFIX = "/console"
_API = PREFIX + "/api/"
_STATIC = PREFIX + "/static/"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class Console:
    """The web console of one server."""

    def __init__(self, credentials: Credentials, services: Services) -> None:
        self.sessions = Sessions(credentials.access_key_id, credentials.secret_access_key)
        self.access_key_id = credentials.access_key_id
        self.services = services
        self.api: ConsoleApi | None = None

    def install(self, app: App) -> None:
        self.api = ConsoleApi(self.services, app.lambda_operations)
        app.add_raw_route(PREFIX, self.route)

    def sign_in_url(self, endpoint: str) -> str:
        """A fresh one-time sign-in link (valid once, for 10 minutes)."""
        return f"{endpoint}{PREFIX}/?token={self.sessions.new_link()}"

    async def route(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except ConsoleError as error:
            return error_response(error)

    async def _route(self, request: Request) -> Response:
        path = request.path
        if path == PREFIX:
            return 308, [(b"location", b"/console/")], b""
        if path == PREFIX + "/":
            return self._index(request)
        if path.startswith(_STATIC):
            return static_file(path[len(_STATIC) :])
        if path == _API + "session":
            return self._session(request)
        if path.startswith(_API):
            self._require(request)
            assert self.api is not None
            return await self.api.handle(request, path[len(_API) :])
        raise ConsoleError(404, "NotFound", f"Nothing at {path}.")

    def _index(self, request: Request) -> Response:
        token = request.query.get("token", [None])[0]
        if token is None:
            return static_file("index.html")
        session = self.sessions.redeem_link(token)
        if session is None:
            log.warning("console sign-in link refused (used, expired or unknown)")
            return 303, [(b"location", b"/console/#/signin/link-expired")], b""
        return 303, [(b"location", b"/console/"), session_cookie(session.token, SESSION_IDLE_S)], b""

    def _require(self, request: Request) -> Session:
        session = self.sessions.get(cookie_token(request))
        if session is None:
            raise ConsoleError(401, "NotSignedIn", "Sign in to use the console.")
        if request.method not in _SAFE_METHODS and not csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise ConsoleError(
                403, "CsrfTokenMissing", f"State-changing requests need the {CSRF_HEADER} header."
            )
        return session

    def _session(self, request: Request) -> Response:
        if request.method == "POST":
            return self._sign_in(request)
        session = self._require(request)
        if request.method == "GET":
            return json_response(200, {"csrfToken": session.csrf, "accessKeyId": self.access_key_id})
        if request.method == "DELETE":
            self.sessions.sign_out(session.token)
            return json_response(200, {"signedOut": True}, [session_cookie("", 0)])
        raise ConsoleError(405, "MethodNotAllowed", f"{request.method} is not allowed here.")

    def _sign_in(self, request: Request) -> Response:
        body = json_body(request)
        key = field(body, "accessKeyId", str)
        secret = field(body, "secretAccessKey", str)
        session = self.sessions.sign_in(key[:256], secret[:256])
        if session is None:
            log.warning("console sign-in refused")
            raise ConsoleError(401, "InvalidCredentials", "The access key ID or secret access key is wrong.")
        cookie = session_cookie(session.token, SESSION_IDLE_S)
        return json_response(200, {"csrfToken": session.csrf, "accessKeyId": self.access_key_id}, [cookie])
