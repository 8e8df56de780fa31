"""npm's aws-lambda-ric (AWS's official Node.js runtime interface client) runs unmodified as a custom
runtime's bootstrap (provided.al2023), talking to lambdad's Runtime API.

aws-lambda-ric ships no prebuilt binaries: `npm install` builds curl and aws-lambda-cpp from bundled
sources and then a native addon with node-gyp (about a minute on two cores). The built node_modules is
cached under tests/runtime_clients/.cache/ (keyed by the package version, node version and machine),
so only the first run pays for it. Where it cannot be built (no node/npm, no compiler or cmake, no Node
headers and no way to download them, no registry) the test skips and says exactly why.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_kwargs

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

RIC_VERSION = "4.0.2"
CACHE_ROOT = Path(__file__).resolve().parents[1] / "runtime_clients" / ".cache"
BUILD_TIMEOUT_S = 900
#: Tools the package's preinstall/postinstall scripts (and node-gyp) run.
TOOLCHAIN = ("node", "npm", "cmake", "make", "cc", "c++", "python3", "tar", "xz")

HANDLER = """\
let calls = 0;

export const handler = async (event, context) => {
  calls += 1;
  console.log("ric says", JSON.stringify(event));
  if (event.fail) {
    throw new TypeError("asked to fail");
  }
  if (event.big) {
    return "x".repeat(7 * 1024 * 1024);
  }
  return {
    event,
    calls,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remaining: context.getRemainingTimeInMillis(),
    traceId: process.env._X_AMZN_TRACE_ID ?? null,
    node: process.version,
  };
};
"""

#: A response-streaming handler: the client POSTs its response chunked, errors in trailers.
STREAM_HANDLER = """\
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType("text/plain");
  responseStream.write("hello ");
  await new Promise((resolve) => setTimeout(resolve, 20));
  responseStream.write(event.fail ? "and then" : `stream ${context.awsRequestId}`);
  if (event.fail) {
    throw new RangeError("failed mid-stream");
  }
  responseStream.end();
});
"""

#: The package's bin, as npm links it into node_modules/.bin (what `npx aws-lambda-ric` runs).
BOOTSTRAP = """\
#!/bin/sh
exec /var/task/node_modules/.bin/aws-lambda-ric "$_HANDLER"
"""


def _node_headers_env() -> dict[str, str]:
    """node-gyp downloads Node's headers from nodejs.org unless told where they are; Debian's
    libnode-dev (and most distribution packages) install them under /usr/include/node."""
    env = dict(os.environ)
    if (
        not any(k.lower() == "npm_config_nodedir" for k in env)
        and Path("/usr/include/node/node_api.h").exists()
    ):
        node = shutil.which("node")
        if node and Path(node).resolve().parent == Path("/usr/bin"):
            env["npm_config_nodedir"] = "/usr"
    return env


def _build(target: Path) -> None:
    """`npm install aws-lambda-ric` into ``target`` (a fresh directory); skips with the reason if it fails."""
    (target / "package.json").write_text(json.dumps({"name": "ric-function", "private": True}))
    command = ["npm", "install", "--no-audit", "--no-fund", "--foreground-scripts", "--no-save",
               f"aws-lambda-ric@{RIC_VERSION}"]  # fmt: skip
    started = time.monotonic()
    try:
        result = subprocess.run(
            command,
            cwd=target,
            env=_node_headers_env(),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"`{' '.join(command)}` did not finish in {BUILD_TIMEOUT_S} s")
    output = "\n".join(
        line for line in (result.stdout + result.stderr).splitlines() if "LIBARCHIVE.xattr" not in line
    )
    (target / "npm-install.log").write_text(output)
    if result.returncode != 0:
        pytest.skip(
            f"`{' '.join(command)}` failed (exit {result.returncode}); last output:\n{output[-1500:]}"
        )
    addon = target / "node_modules" / "aws-lambda-ric" / "rapid-client.node"
    if not addon.is_file():
        pytest.skip(
            f"npm installed aws-lambda-ric but did not run its install scripts (no {addon.name}); "
            f"allow them (npm's allow-scripts / ignore-scripts settings). Last output:\n{output[-800:]}"
        )
    (target / "build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")


@pytest.fixture(scope="module")
def ric_node_modules() -> Path:
    """node_modules with aws-lambda-ric built for this machine, from the cache or built now."""
    missing = [tool for tool in TOOLCHAIN if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"building aws-lambda-ric needs {', '.join(missing)} (not on PATH)")
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    key = f"aws-lambda-ric-{RIC_VERSION}-node{node_version.lstrip('v')}-{platform.machine()}"
    cached = CACHE_ROOT / key
    if (cached / "node_modules" / "aws-lambda-ric" / "rapid-client.node").is_file():
        return cached / "node_modules"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building the same thing
        if not (cached / "node_modules" / "aws-lambda-ric" / "rapid-client.node").is_file():
            staging = CACHE_ROOT / f".{key}.{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                _build(staging)
                shutil.rmtree(cached, ignore_errors=True)
                staging.rename(cached)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return cached / "node_modules"


def _add(archive: zipfile.ZipFile, name: str, content: str | bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, content)


@pytest.fixture(scope="module")
def ric_package(ric_node_modules: Path) -> bytes:
    """The function zip a user would upload: index.mjs, bootstrap and node_modules (`zip -ry`:
    symlinks stay symlinks, so node_modules/.bin works as npm made it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        root = ric_node_modules.parent
        for path in sorted(ric_node_modules.rglob("*")):
            name = str(path.relative_to(root))
            if path.is_symlink():
                _add(archive, name, os.readlink(path), stat.S_IFLNK | 0o777)
            elif path.is_file():
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                _add(archive, name, path.read_bytes(), stat.S_IFREG | mode)
        _add(archive, "bootstrap", BOOTSTRAP, stat.S_IFREG | 0o755)
        _add(archive, "index.mjs", HANDLER, stat.S_IFREG | 0o644)
        _add(archive, "stream.mjs", STREAM_HANDLER, stat.S_IFREG | 0o644)
    return buffer.getvalue()


def _create(lam: Any, package: bytes, handler: str) -> str:
    name = f"ricnode-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        **create_kwargs(name, package, Runtime="provided.al2023", Handler=handler, Timeout=10, MemorySize=256)
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    return name


def _invoke(lam: Any, name: str, payload: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload), **kwargs)
    return response, json.loads(response["Payload"].read())


def test_aws_lambda_ric_is_the_runtime(lam: Any, ric_package: bytes) -> None:
    import base64

    name = _create(lam, ric_package, "index.handler")
    try:
        response, body = _invoke(lam, name, {"hello": "ric"}, LogType="Tail")
        assert "FunctionError" not in response, body
        request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        assert body["event"] == {"hello": "ric"} and body["calls"] == 1
        assert body["requestId"] == request_id
        assert body["functionName"] == name and body["functionVersion"] == "$LATEST"
        assert body["invokedFunctionArn"].endswith(f":function:{name}")
        assert str(body["memoryLimitInMB"]) == "256"
        assert body["logGroupName"] == f"/aws/lambda/{name}" and body["logStreamName"]
        assert 0 < body["remaining"] <= 10_000
        tail = base64.b64decode(response["LogResult"]).decode()
        # the client's own console patching: "<time>\t<request id>\tINFO\t<message>"
        assert re.search(rf"\t{request_id}\tINFO\tric says {{\"hello\":\"ric\"}}", tail), tail

        response, body = _invoke(lam, name, {})
        assert "FunctionError" not in response, body
        assert body["calls"] == 2, "the runtime process stays warm between invokes"
        assert body["requestId"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

        failed, error = _invoke(lam, name, {"fail": True})
        assert failed["FunctionError"] == "Unhandled"
        assert error["errorType"] == "TypeError" and error["errorMessage"] == "asked to fail", error
        assert any("asked to fail" in line for line in error["trace"]), error
        assert _invoke(lam, name, {})[1]["calls"] == 4, "an error does not end the runtime"

        started = time.monotonic()
        failed, error = _invoke(lam, name, {"big": True})
        assert failed["FunctionError"] == "Unhandled" and time.monotonic() - started < 5, error
        assert error == {
            "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
    finally:
        lam.delete_function(FunctionName=name)


def test_aws_lambda_ric_streaming_handler(lam: Any, ric_package: bytes) -> None:
    """awslambda.streamifyResponse: the client streams its response as a chunked POST; a plain
    (buffered) Invoke answers with the whole stream, a failure mid-stream with the trailers' error."""
    name = _create(lam, ric_package, "stream.handler")
    try:
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        assert "FunctionError" not in response
        request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        assert response["Payload"].read() == f"hello stream {request_id}".encode()

        failed, error = _invoke(lam, name, {"fail": True})
        assert failed["FunctionError"] == "Unhandled"
        assert error["errorType"] == "RangeError" and error["errorMessage"] == "failed mid-stream", error
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        assert response["Payload"].read().startswith(b"hello stream "), "the runtime stays up"
    finally:
        lam.delete_function(FunctionName=name)


def test_aws_lambda_ric_init_error(lam: Any, ric_package: bytes) -> None:
    """A handler module that is not there: the client reports it on /runtime/init/error."""
    name = _create(lam, ric_package, "missing.handler")
    try:
        failed, error = _invoke(lam, name, {})
        assert failed["FunctionError"] == "Unhandled"
        assert error["errorType"] == "Runtime.ImportModuleError", error
        assert "missing" in error["errorMessage"], error
    finally:
        lam.delete_function(FunctionName=name)
