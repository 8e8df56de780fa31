"""The nodejs20.x bootstrap (lambdad/runtime/node/bootstrap.mjs) against a stand-in Runtime API.

The stand-in below is a test harness for the bootstrap alone (the real agent is tested elsewhere): a
threaded http.server implementing /invocation/next, /response, /error and /init/error, fed from a queue.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

BOOTSTRAP = Path(__file__).resolve().parents[2] / "lambdad" / "runtime" / "node" / "bootstrap.mjs"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


class FakeRuntimeAPI:
    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.results: dict[str, dict[str, Any]] = {}
        self.fetched: dict[str, float] = {}
        self.init_error: dict[str, Any] | None = None
        self.cond = threading.Condition()
        self.stopped = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> tuple[bytes, dict[str, str]]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data, trailers = b"", {}
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    while (line := self.rfile.readline().strip()) != b"":
                        k, _, v = line.decode().partition(":")
                        trailers[k.strip().lower()] = v.strip()
                    return data, trailers
                return self.rfile.read(int(self.headers.get("Content-Length", "0"))), {}

            def do_GET(self) -> None:
                assert self.path == "/2018-06-01/runtime/invocation/next"
                while not api.stopped:
                    try:
                        ev = api.events.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    api.fetched[ev["id"]] = time.monotonic()
                    headers = {
                        "Lambda-Runtime-Aws-Request-Id": ev["id"],
                        "Lambda-Runtime-Deadline-Ms": str(ev["deadline"]),
                        "Lambda-Runtime-Invoked-Function-Arn": ARN,
                        "Lambda-Runtime-Trace-Id": ev["trace"],
                        **ev["headers"],
                    }
                    self._reply(200, json.dumps(ev["payload"]).encode(), headers)
                    return

            def do_POST(self) -> None:
                body, trailers = self._body()
                m = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                with api.cond:
                    if self.path == "/2018-06-01/runtime/init/error":
                        api.init_error = {"body": json.loads(body), "headers": dict(self.headers)}
                    elif m:
                        api.results[m.group(1)] = {
                            "kind": m.group(2),
                            "raw": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "trailers": trailers,
                            "time": time.monotonic(),
                        }
                    else:
                        self._reply(404, b'{"errorMessage":"unknown path"}')
                        return
                    api.cond.notify_all()
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(
        self, payload: Any = None, *, timeout_ms: int = 3000, headers: dict[str, str] | None = None
    ) -> str:
        rid = str(uuid.uuid4())
        self.events.put(
            {
                "id": rid,
                "payload": payload if payload is not None else {},
                "deadline": int(time.time() * 1000) + timeout_ms,
                "trace": f"Root=1-{rid[:8]}-{rid[9:13]}",
                "headers": headers or {},
            }
        )
        return rid

    def wait(self, rid: str, timeout: float = 10) -> dict[str, Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: rid in self.results, timeout), f"no result for {rid}"
            return self.results[rid]

    def wait_init_error(self, timeout: float = 10) -> dict[str, Any]:
        with self.cond:
            assert self.cond.wait_for(lambda: self.init_error is not None, timeout), "no init error"
            assert self.init_error is not None
            return self.init_error

    def close(self) -> None:
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()


class Fn:
    """One bootstrap process serving a function written into a temporary task root."""

    def __init__(self, root: Path, handler: str, env: dict[str, str] | None = None) -> None:
        self.api = FakeRuntimeAPI()
        self.log_path = root.parent / f"{root.name}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(root),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abcdef",
            "AWS_REGION": "us-east-1",
            **(env or {}),
        }
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, str(BOOTSTRAP)],
            cwd=root,
            env=full_env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def invoke(self, payload: Any = None, **kw: Any) -> tuple[str, dict[str, Any]]:
        rid = self.api.invoke(payload, **kw)
        return rid, self.api.wait(rid)

    def call(self, payload: Any = None, **kw: Any) -> Any:
        _, res = self.invoke(payload, **kw)
        assert res["kind"] == "response", res
        return json.loads(res["raw"])

    def error(self, payload: Any = None, **kw: Any) -> dict[str, Any]:
        _, res = self.invoke(payload, **kw)
        assert res["kind"] == "error", res
        body: dict[str, Any] = json.loads(res["raw"])
        assert res["headers"]["lambda-runtime-function-error-type"] == body["errorType"]
        return body

    def exit_code(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def logs(self) -> str:
        self.log_file.flush()
        return self.log_path.read_bytes().decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log_file.close()
        self.api.close()


@pytest.fixture
def function(tmp_path: Path) -> Iterator[Any]:
    started: list[Fn] = []

    def make(files: dict[str, str], handler: str = "index.handler", env: dict[str, str] | None = None) -> Fn:
        root = tmp_path / f"task{len(started)}"
        for name, text in files.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        root.mkdir(exist_ok=True)
        fn = Fn(root, handler, env)
        started.append(fn)
        return fn

    yield make
    for fn in started:
        fn.close()


# ----------------------------------------------------------------------------------------------- styles


def test_cjs_async_handler(function: Any) -> None:
    fn = function({"index.js": "exports.handler = async (event) => ({ got: event.x, mod: typeof module });"})
    assert fn.call({"x": 1}) == {"got": 1, "mod": "object"}
    assert fn.call({"x": [2, 3]}) == {"got": [2, 3], "mod": "object"}


def test_cjs_callback_waits_for_empty_event_loop(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            let late = 0;
            exports.handler = (event, context, callback) => {
              if (event.noWait) context.callbackWaitsForEmptyEventLoop = false;
              setTimeout(() => { late++; }, event.delay);
              callback(null, { late });
            };
            """
        }
    )
    rid, res = fn.invoke({"delay": 400})
    assert json.loads(res["raw"]) == {"late": 0}
    assert res["time"] - fn.api.fetched[rid] >= 0.35  # waited for the timer before responding
    rid, res = fn.invoke({"delay": 1500, "noWait": True})
    assert json.loads(res["raw"]) == {"late": 1}
    assert res["time"] - fn.api.fetched[rid] < 0.5  # responded at once, timer left pending


def test_callback_error_and_legacy_context_methods(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = (event, context, callback) => {
              switch (event.mode) {
                case 'cb-err': return callback(new TypeError('bad input'));
                case 'cb-string': return callback('plain string');
                case 'succeed': return context.succeed({ legacy: true });
                case 'fail': return context.fail(new Error('failed'));
                case 'done': return context.done(null, 'done!');
                case 'twice': callback(null, 1); callback(null, 2); return;
                case 'nothing': return;
              }
            };
            """
        }
    )
    err = fn.error({"mode": "cb-err"})
    assert (err["errorType"], err["errorMessage"]) == ("TypeError", "bad input")
    assert fn.error({"mode": "cb-string"}) == {
        "errorType": "string",
        "errorMessage": "plain string",
        "trace": [],
    }
    assert fn.call({"mode": "succeed"}) == {"legacy": True}
    assert fn.error({"mode": "fail"})["errorMessage"] == "failed"
    assert fn.call({"mode": "done"}) == "done!"
    assert fn.call({"mode": "twice"}) == 1
    assert fn.call({"mode": "nothing"}) is None  # sync handler never calling back: null once loop drains


def test_esm_mjs_handler(function: Any) -> None:
    fn = function(
        {
            "index.mjs": """
            import { helper } from './lib.mjs';
            export const handler = async (event) => helper(event.n) + (typeof require);
            """,
            "lib.mjs": "export const helper = (n) => `n=${n * 2}/`;",
        }
    )
    assert fn.call({"n": 21}) == "n=42/undefined"


def test_package_json_type_module(function: Any) -> None:
    fn = function(
        {
            "package.json": '{"name": "x", "type": "module"}',
            "index.js": "export const handler = async () => ({ esm: import.meta.url.endsWith('index.js') });",
        }
    )
    assert fn.call() == {"esm": True}


def test_nested_handler_path_and_property(function: Any) -> None:
    files = {
        "src/app.js": "exports.handler = async () => 'app';\n"
        "exports.api = { v1: { get: async () => 'nested' } };",
    }
    assert function(files, "src/app.handler").call() == "app"
    assert function(files, "src/app.api.v1.get").call() == "nested"


def test_cjs_extension_and_node_modules(function: Any) -> None:
    fn = function(
        {
            "index.cjs": "const dep = require('dep'); exports.handler = async () => dep.value;",
            "node_modules/dep/index.js": "exports.value = 'from node_modules';",
        }
    )
    assert fn.call() == "from node_modules"


def test_node_path_default_and_layers(function: Any, tmp_path: Path) -> None:
    layer = tmp_path / "layer" / "nodejs" / "node_modules" / "layerdep"
    layer.mkdir(parents=True)
    (layer / "index.js").write_text("exports.v = 'layer';")
    layer_fn = {"index.js": "exports.handler = async () => require('layerdep').v;"}
    assert function(layer_fn, env={"NODE_PATH": str(layer.parent)}).call() == "layer"
    # without NODE_PATH the bootstrap sets AWS's default, which ends with the task root
    files = {
        "index.js": "exports.handler = async () => require('helper').v;",
        "helper.js": "exports.v = 'root';",
    }
    assert function(files).call() == "root"


# ----------------------------------------------------------------------------------------------- errors


def test_thrown_error(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            class ValidationError extends Error {
              constructor(m) { super(m); this.name = 'ValidationError'; }
            }
            exports.handler = async (event) => {
              if (event.custom) throw new ValidationError('bad field');
              throw new Error('boom');
            };
            """
        }
    )
    err = fn.error()
    assert err["errorType"] == "Error"
    assert err["errorMessage"] == "boom"
    assert err["trace"][0] == "Error: boom"
    assert any("index.js" in line for line in err["trace"][1:])
    err = fn.error({"custom": True})
    assert (err["errorType"], err["errorMessage"]) == ("ValidationError", "bad field")
    assert fn.proc.poll() is None  # a handled error leaves the environment alive
    # the error is logged like AWS: "Invoke Error \t{json}"
    assert re.search(ISO + r"\t[0-9a-f-]{36}\tERROR\tInvoke Error \t\{\"errorType\":\"Error\"", fn.logs())


def test_rejections(function: Any) -> None:
    fn = function(
        {
            "index.mjs": """
            export const handler = async (event) => {
              if (event.kind === 'string') return Promise.reject('nope');
              await new Promise((r) => setTimeout(r, 5));
              throw new RangeError('out of range');
            };
            """
        }
    )
    err = fn.error()
    assert (err["errorType"], err["errorMessage"]) == ("RangeError", "out of range")
    assert err["trace"][0] == "RangeError: out of range"
    assert fn.error({"kind": "string"}) == {"errorType": "string", "errorMessage": "nope", "trace": []}


def test_missing_module(function: Any) -> None:
    fn = function({"other.js": "exports.handler = async () => 1;"})
    init = fn.api.wait_init_error()
    body = init["body"]
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert init["headers"]["Lambda-Runtime-Function-Error-Type"] == "Runtime.ImportModuleError"
    assert body["errorMessage"].startswith("Error: Cannot find module 'index'\nRequire stack:\n- ")
    assert body["errorMessage"].endswith("/index.mjs")
    assert fn.exit_code() == 129
    assert re.search(
        ISO + r"\tundefined\tERROR\tUncaught Exception \t\{\"errorType\":\"Runtime.Import", fn.logs()
    )


def test_missing_dependency_of_cjs_handler(function: Any) -> None:
    fn = function({"index.js": "require('left-pad'); exports.handler = async () => 1;"})
    body = fn.api.wait_init_error()["body"]
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"].startswith("Error: Cannot find module 'left-pad'\nRequire stack:\n- ")
    assert fn.exit_code() != 0


def test_missing_export(function: Any) -> None:
    fn = function({"index.js": "exports.other = async () => 1; exports.notfn = 3;"})
    body = fn.api.wait_init_error()["body"]
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert body["errorMessage"] == "index.handler is undefined or not exported"
    assert body["trace"][0] == "Runtime.HandlerNotFound: index.handler is undefined or not exported"
    assert fn.exit_code() == 129
    body = function({"index.js": "exports.notfn = 3;"}, "index.notfn").api.wait_init_error()["body"]
    assert (body["errorType"], body["errorMessage"]) == (
        "Runtime.HandlerNotFound",
        "index.notfn is not a function",
    )


def test_malformed_handler(function: Any) -> None:
    body = function({"index.js": ""}, "index").api.wait_init_error()["body"]
    assert (body["errorType"], body["errorMessage"]) == ("Runtime.MalformedHandlerName", "Bad handler")
    body = function({"index.js": ""}, "../x.handler").api.wait_init_error()["body"]
    assert body["errorType"] == "Runtime.MalformedHandlerName"
    assert body["errorMessage"] == (
        "'../x.handler' is not a valid handler name. "
        "Use absolute paths when specifying root directories in handler names."
    )


@pytest.mark.parametrize("name", ["index.js", "index.mjs"])
def test_syntax_error(function: Any, name: str) -> None:
    fn = function({name: "exports.handler = async () => { return 1;; }}\n"})
    body = fn.api.wait_init_error()["body"]
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"].startswith("SyntaxError: ")
    assert fn.exit_code() == 129


def test_init_exception_in_module_scope(function: Any) -> None:
    fn = function({"index.js": "throw new Error('init failed');"})
    body = fn.api.wait_init_error()["body"]
    assert (body["errorType"], body["errorMessage"]) == ("Error", "init failed")
    assert fn.exit_code() == 129


def test_unserializable_results(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = async (event) => {
              if (event.kind === 'bigint') return { n: 10n };
              const o = { a: 1 }; o.self = o; return o;
            };
            """
        }
    )
    for kind in ("bigint", "circular"):
        err = fn.error({"kind": kind})
        assert (err["errorType"], err["errorMessage"]) == ("Error", "Unable to stringify response body")
    assert fn.proc.poll() is None


def test_unhandled_rejection_during_invoke(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = async () => {
              Promise.reject(new Error('floating'));
              await new Promise((r) => setTimeout(r, 100));
              return 'unreached';
            };
            """
        }
    )
    err = fn.error()
    assert err["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert err["errorMessage"] == "Error: floating"
    assert fn.exit_code() == 128
    assert "ERROR\tUnhandled Promise Rejection \t{" in fn.logs()


def test_uncaught_exception_during_invoke(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = (event, context, callback) => {
              setTimeout(() => { throw new TypeError('in a timer'); }, 10);
            };
            """
        }
    )
    err = fn.error()
    assert (err["errorType"], err["errorMessage"]) == ("TypeError", "in a timer")
    assert fn.exit_code() == 129


# ------------------------------------------------------------------------------------- context, logs


def test_console_logging_format(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            console.log('at init');
            exports.handler = async () => {
              console.log('hello %s', 'world', 42);
              console.info({ a: 1 });
              console.warn('careful');
              console.error('bad');
              console.debug('dbg');
              console.trace('trc');
              console.log('line1\\nline2');
              process.stdout.write('raw stdout\\n');
              return null;
            };
            """
        }
    )
    rid, _ = fn.invoke()
    lines = fn.logs().split("\n")
    assert re.fullmatch(ISO + r"\tundefined\tINFO\tat init", lines[0])
    expected = [
        "INFO\thello world 42",
        "INFO\t{ a: 1 }",
        "WARN\tcareful",
        "ERROR\tbad",
        "DEBUG\tdbg",
        "TRACE\ttrc",
        "INFO\tline1\rline2",  # one line per message: inner newlines become \r, as aws-lambda-ric does
    ]
    for line, tail in zip(lines[1:], expected, strict=False):
        assert re.fullmatch(ISO + "\t" + re.escape(rid) + "\t" + re.escape(tail), line), line
    assert lines[8] == "raw stdout"


def test_log_level_and_json_format(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = async () => {
              console.debug('hidden'); console.info('shown'); console.error('e', new Error('x'));
            };
            """
        },
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )
    rid, _ = fn.invoke()
    records = [json.loads(line) for line in fn.logs().splitlines()]
    assert [r["level"] for r in records] == ["INFO", "ERROR"]
    assert records[0]["requestId"] == rid and records[0]["message"] == "shown"
    assert records[1]["errorType"] == "Error" and records[1]["errorMessage"] == "x"


def test_context_fields(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            exports.handler = async (event, context) => {
              const first = context.getRemainingTimeInMillis();
              await new Promise((r) => setTimeout(r, 60));
              const { getRemainingTimeInMillis, succeed, fail, done, ...rest } = context;
              return { ...rest, waits: context.callbackWaitsForEmptyEventLoop, first,
                       second: context.getRemainingTimeInMillis(), trace: process.env._X_AMZN_TRACE_ID,
                       legacy: [typeof succeed, typeof fail, typeof done] };
            };
            """
        }
    )
    cc = {"custom": {"k": "v"}, "env": {}, "client": {}}
    ident = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    rid, res = fn.invoke(
        {},
        timeout_ms=5000,
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(cc),
            "Lambda-Runtime-Cognito-Identity": json.dumps(ident),
        },
    )
    out = json.loads(res["raw"])
    assert out["functionName"] == "fn"
    assert out["functionVersion"] == "$LATEST"
    assert out["memoryLimitInMB"] == "256"
    assert out["invokedFunctionArn"] == ARN
    assert out["awsRequestId"] == rid
    assert out["logGroupName"] == "/aws/lambda/fn"
    assert out["logStreamName"] == "2024/01/01/[$LATEST]abcdef"
    assert out["clientContext"] == cc
    assert out["identity"] == ident
    assert out["waits"] is True
    assert out["legacy"] == ["function"] * 3
    assert out["trace"] == f"Root=1-{rid[:8]}-{rid[9:13]}"
    assert 4000 < out["first"] <= 5000
    assert out["second"] <= out["first"] - 50
    # absent headers: no clientContext / identity
    out = fn.call({})
    assert "clientContext" not in out and "identity" not in out


def test_globals_persist_and_undefined_is_null(function: Any) -> None:
    fn = function(
        {
            "index.js": """
            let count = 0;
            globalThis.seen = globalThis.seen || [];
            exports.handler = async (event) => {
              count++; globalThis.seen.push(event.i);
              if (event.i === 2) return undefined;
              return { count, seen: globalThis.seen };
            };
            """
        }
    )
    assert fn.call({"i": 1}) == {"count": 1, "seen": [1]}
    _, res = fn.invoke({"i": 2})
    assert res["kind"] == "response" and res["raw"] == b"null"
    assert fn.call({"i": 3}) == {"count": 3, "seen": [1, 2, 3]}


def test_response_streaming(function: Any) -> None:
    fn = function(
        {
            "index.mjs": """
            export const handler = awslambda.streamifyResponse(async (event, stream, context) => {
              if (event.fail) { stream.write('partial'); throw new Error('mid-stream'); }
              stream = awslambda.HttpResponseStream.from(stream, { statusCode: 201 });
              stream.write('hello ');
              stream.end('world');
            });
            """
        }
    )
    _, res = fn.invoke({})
    assert res["kind"] == "response"
    assert res["headers"]["lambda-runtime-function-response-mode"] == "streaming"
    assert res["headers"]["content-type"] == "application/vnd.awslambda.http-integration-response"
    assert res["raw"] == b'{"statusCode":201}' + b"\0" * 8 + b"hello world"
    _, res = fn.invoke({"fail": True})
    assert res["raw"] == b"partial"
    assert res["trailers"]["lambda-runtime-function-error-type"] == "Error"
