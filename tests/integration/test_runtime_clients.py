"""AWS's official runtime interface clients run unmodified as a custom runtime's bootstrap."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_kwargs

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

HANDLER = """\
import os
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    print("ric says", event)
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"event": event, "calls": CALLS, "request_id": context.aws_request_id,
            "function": context.function_name, "remaining": context.get_remaining_time_in_millis()}
"""

BOOTSTRAP = """\
#!/bin/sh
export PYTHONPATH=/var/task
exec /usr/bin/python3.11 -m awslambdaric "$_HANDLER"
"""


@pytest.fixture(scope="module")
def awslambdaric_package(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A function zip with PyPI's awslambdaric (and its dependencies) installed, as a user would."""
    target = tmp_path_factory.mktemp("ric")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "--only-binary=:all:",
         "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--implementation", "cp",
         "awslambdaric"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"awslambdaric could not be installed from PyPI: {pip.stderr.strip()[-300:]}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(target.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, str(path.relative_to(target)))
        for name, content, mode in (("bootstrap", BOOTSTRAP, 0o755), ("app.py", HANDLER, 0o644)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16  # as on AWS, code must be world-readable
            archive.writestr(info, content)
    return buffer.getvalue()


def _invoke(lam: Any, name: str, payload: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload))
    return response, json.loads(response["Payload"].read())


def test_awslambdaric_is_the_runtime(lam: Any, awslambdaric_package: bytes, tmp_path: Path) -> None:
    name = f"ric-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        **create_kwargs(
            name, awslambdaric_package, Runtime="provided.al2023", Handler="app.handler", Timeout=10
        )
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    response, body = _invoke(lam, name, {"hello": "ric"})
    assert "FunctionError" not in response, body
    assert body["event"] == {"hello": "ric"} and body["calls"] == 1 and body["function"] == name
    assert body["request_id"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert 0 < body["remaining"] <= 10_000
    assert _invoke(lam, name, {})[1]["calls"] == 2, "the runtime process stays warm between invokes"
    failed, error = _invoke(lam, name, {"fail": True})
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError" and error["errorMessage"] == "asked to fail"
    assert any("asked to fail" in line for line in error["stackTrace"])
    lam.delete_function(FunctionName=name)
