"""The web console against the real server: sign-in, CSRF, the one-time link, validation, escaping.

The browser scenario runs in real headless Chromium through playwright-core (tests/console_e2e).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ACCESS_KEY, SECRET_KEY, ServerProcess, make_zip

XSS = "<img src=x onerror=alert(1)>"
E2E = Path(__file__).resolve().parent.parent / "console_e2e"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
HANDLER = f"def handler(event, context):\n    print({XSS!r})\n    return {{'echo': event}}\n"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Browserless:
    """The console API as a browser would call it: a cookie and the CSRF header."""

    endpoint: str
    cookie: str | None = None
    csrf: str | None = None
    sent_csrf: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        if self.cookie:
            request.add_header("cookie", self.cookie)
        if self.csrf and self.sent_csrf:
            request.add_header("x-console-csrf", self.csrf)
        try:
            with _OPENER.open(request, timeout=60) as answer:
                return _answer(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            return _answer(error.code, error.headers, error.read())

    def sign_in(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> Answer:
        answer = self.call("POST", "/console/api/session", {"accessKeyId": key, "secretAccessKey": secret})
        if answer.status == 200:
            self.cookie = answer.headers["set-cookie"].split(";")[0]
            self.csrf = answer.body["csrfToken"]
        return answer


def _answer(status: int, headers: Any, body: bytes) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    parsed: Any = body
    if lowered.get("content-type", "").startswith("application/json"):
        parsed = json.loads(body)
    return Answer(status, lowered, parsed)


@pytest.fixture
def console(server: ServerProcess) -> Browserless:
    client = Browserless(server.endpoint)
    assert client.sign_in().status == 200
    return client


def _create(console: Browserless, name: str, **extra: Any) -> Answer:
    zip_b64 = base64.b64encode(make_zip({"handler.py": HANDLER})).decode()
    body = {
        "name": name,
        "runtime": "python3.11",
        "handler": "handler.handler",
        "zipBase64": zip_b64,
        **extra,
    }
    return console.call("POST", "/console/api/functions", body)


def test_pages_and_assets_are_served_locally(server: ServerProcess) -> None:
    client = Browserless(server.endpoint)
    index = client.call("GET", "/console/")
    assert index.status == 200
    assert "content-security-policy" in index.headers
    html = index.body.decode()
    assert "http://" not in html and "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html):
        assert client.call("GET", asset).status == 200
    assert client.call("GET", "/console/static/../server.py").status == 404
    assert client.call("GET", "/console").status == 308


def test_sign_in_failure(server: ServerProcess) -> None:
    client = Browserless(server.endpoint)
    wrong = client.sign_in(secret="not-the-secret")
    assert wrong.status == 401
    assert wrong.body["error"] == "InvalidCredentials"
    assert "set-cookie" not in wrong.headers
    assert client.call("GET", "/console/api/functions").status == 401
    assert client.call("POST", "/console/api/session", raw=b"{nope").status == 400
    assert client.call("POST", "/console/api/session", {"accessKeyId": 1}).status == 400


def test_sign_in_success_and_sign_out(server: ServerProcess) -> None:
    client = Browserless(server.endpoint)
    answer = client.sign_in()
    assert answer.status == 200
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert SECRET_KEY not in json.dumps(answer.body)
    session = client.call("GET", "/console/api/session")
    assert session.status == 200 and session.body["accessKeyId"] == ACCESS_KEY
    assert SECRET_KEY not in json.dumps(session.body)
    assert client.call("GET", "/console/api/functions").status == 200
    assert client.call("DELETE", "/console/api/session").status == 200
    assert client.call("GET", "/console/api/functions").status == 401


def test_state_changing_calls_need_the_csrf_token(console: Browserless) -> None:
    name = f"console-{uuid.uuid4().hex[:8]}"
    console.sent_csrf = False
    refused = _create(console, name)
    assert refused.status == 403 and refused.body["error"] == "CsrfTokenMissing"
    console.csrf, console.sent_csrf = "forged", True
    assert console.call("DELETE", "/console/api/session").status == 403
    assert console.call("GET", f"/console/api/functions/{name}").status == 404


def test_one_time_link_works_once(server: ServerProcess) -> None:
    found = re.search(r"/console/\?token=([A-Za-z0-9_-]+)", server.log())
    assert found, server.log()
    client = Browserless(server.endpoint)
    first = client.call("GET", f"/console/?token={found[1]}")
    assert first.status == 303 and first.headers["location"] == "/console/"
    client.cookie = first.headers["set-cookie"].split(";")[0]
    assert client.call("GET", "/console/api/session").status == 200
    again = Browserless(server.endpoint).call("GET", f"/console/?token={found[1]}")
    assert again.status == 303 and "link-expired" in again.headers["location"]
    assert "set-cookie" not in again.headers


def test_bad_input_gets_json_errors(console: Browserless) -> None:
    assert console.call("GET", "/console/api/functions/no-such-fn").status == 404
    assert console.call("GET", "/console/api/nothing-here").status == 404
    assert console.call("DELETE", "/console/api/functions").status == 405
    assert console.call("POST", "/console/api/functions", raw=b"[1,").status == 400
    bad_zip = console.call(
        "POST",
        "/console/api/functions",
        {"name": "x", "runtime": "python3.11", "handler": "h.h", "zipBase64": "@@"},
    )
    assert bad_zip.status == 400 and "base64" in bad_zip.body["message"]
    bad_name = _create(console, "bad name!")
    assert bad_name.status == 400 and bad_name.body["message"]
    memory = _create(console, f"c-{uuid.uuid4().hex[:8]}", memorySize="lots")
    assert memory.status == 400 and memory.body["error"] == "InvalidField"
    too_big = _create(console, f"c-{uuid.uuid4().hex[:8]}", memorySize=999_999)
    assert too_big.status == 400
    assert console.call("GET", "/console/api/usage?hours=-4").status == 400


def test_create_configure_invoke_and_observe(console: Browserless) -> None:
    name = f"console-{uuid.uuid4().hex[:8]}"
    created = _create(console, name)
    assert created.status == 201, created.body
    path = f"/console/api/functions/{name}"
    saved = console.call(
        "PUT", path + "/configuration", {"memorySize": 256, "timeout": 5, "environment": {"XSS": XSS}}
    )
    assert saved.status == 200, saved.body
    assert saved.body["configuration"]["Environment"]["Variables"] == {"XSS": XSS}
    assert console.call("PUT", path + "/configuration", {"environment": {"XSS": 1}}).status == 400
    result = console.call("POST", path + "/invoke", {"payload": json.dumps({"a": XSS})})
    assert result.status == 200, result.body
    assert json.loads(result.body["payload"]) == {"echo": {"a": XSS}}
    assert XSS in result.body["logTail"]
    assert result.body["billedMs"] >= 1 and result.body["memoryMb"] == 256
    assert console.call("POST", path + "/invoke", {"payload": "{not json"}).status == 400
    files = console.call("GET", path + "/files").body["files"]
    assert [f["path"] for f in files] == ["handler.py"]
    assert console.call("GET", path + "/files?path=handler.py").body["text"] == HANDLER
    metrics = console.call("GET", path + "/metrics?range=3h")
    assert metrics.status == 200 and sum(metrics.body["series"]["Invocations"]) >= 1
    assert console.call("GET", path + "/metrics?range=7y").status == 400
    listed = console.call("GET", "/console/api/functions").body["functions"]
    assert any(f["name"] == name and sum(f["invocations"]) >= 1 for f in listed)
    for page in ("queues", "schedules", "usage"):
        assert console.call("GET", f"/console/api/{page}").status == 200
    detail = console.call("GET", path).body
    assert {"versions", "aliases", "urls", "mappings", "schedules"} <= set(detail)


def _browser_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not (E2E / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (cd tests/console_e2e && npm ci)"
    return None


@pytest.mark.timeout(300)
def test_console_in_headless_chromium(server: ServerProcess, tmp_path: Path) -> None:
    missing = _browser_missing()
    if missing:
        pytest.skip(f"browser test needs Chromium and playwright-core: {missing}")
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(make_zip({"handler.py": HANDLER}))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CONSOLE_URL": server.endpoint + "/console/",
        "ACCESS_KEY": ACCESS_KEY,
        "SECRET_KEY": SECRET_KEY,
        "ZIP_PATH": str(zip_path),
        "FN_NAME": f"browser-{uuid.uuid4().hex[:8]}",
        "XSS": XSS,
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM,
    }
    done = subprocess.run(
        ["node", str(E2E / "console.test.mjs")], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for shot in ("1-functions", "2-test-result", "3-config", "4-logs", "5-charts"):
        assert (ARTIFACTS / f"{shot}.png").stat().st_size > 0
