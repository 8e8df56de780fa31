"""The server as a process: authentication, persistence across restarts and kill -9, bad input."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdad.config import Settings
from tests.conftest import create_kwargs
from tests.serverproc import ACCESS_KEY, PY_ECHO, SECRET_KEY, ServerProcess, make_zip


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_health_needs_no_signature(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.endpoint + "/health") as answer:
        body = json.loads(answer.read())
    assert answer.status == 200 and body["status"] == "ok"


def test_unsigned_request_is_refused(server: ServerProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(server.endpoint + "/2015-03-31/functions/")
    exc.value.close()
    assert exc.value.code == 403
    assert exc.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_unknown_key_and_wrong_secret(server: ServerProcess) -> None:
    with pytest.raises(ClientError) as exc:
        server.client("lambda", key="AKIAUNKNOWNKEY000000").list_functions()
    assert error_code(exc) == ("UnrecognizedClientException", 403)
    with pytest.raises(ClientError) as exc:
        server.client("lambda", secret="not-the-secret").list_functions()
    assert error_code(exc) == ("InvalidSignatureException", 403)


@contextlib.contextmanager
def mock_clock(moment: datetime.datetime) -> Iterator[None]:
    """Make botocore's signer (the client side, not ours) believe it is ``moment``."""
    import botocore.auth

    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: moment.replace(tzinfo=None)
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = original


def test_stale_signature_is_refused(server: ServerProcess) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    request = botocore.awsrequest.AWSRequest("GET", server.endpoint + "/2015-03-31/functions/")
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), "lambda", "us-east-1"
    )
    stale = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    with mock_clock(stale):
        signer.add_auth(request)
    prepared = request.prepare()
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(prepared.url, headers=dict(prepared.headers)))
    body = exc.value.read().decode()
    exc.value.close()
    assert exc.value.code == 403
    assert "Signature expired" in body


def test_presigned_query_form_is_accepted(server: ServerProcess) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    request = botocore.awsrequest.AWSRequest("GET", server.endpoint + "/2015-03-31/functions/")
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    botocore.auth.SigV4QueryAuth(creds, "lambda", "us-east-1", expires=60).add_auth(request)
    with urllib.request.urlopen(request.url) as answer:
        assert "Functions" in json.loads(answer.read())


def test_bad_zips_are_refused_and_leave_nothing(server: ServerProcess, fn_name: str) -> None:
    lam = server.client("lambda")
    blobs = server.data_dir / "blobs"
    before = sorted(p.name for p in blobs.rglob("*")) if blobs.exists() else []
    slip = make_zip({"../evil.py": "x = 1\n"})
    absolute = make_zip({"/etc/evil.py": "x = 1\n"})
    for package in (slip, absolute, b"PK\x03\x04 not really a zip", b""):
        with pytest.raises(ClientError) as exc:
            lam.create_function(**create_kwargs(fn_name, package))
        assert error_code(exc)[1] in (400, 413)
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name)
    assert error_code(exc) == ("ResourceNotFoundException", 404)
    after = sorted(p.name for p in blobs.rglob("*")) if blobs.exists() else []
    assert after == before


def test_zip_bomb_is_refused(server: ServerProcess, fn_name: str, tmp_path: Path) -> None:
    import zipfile

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("zeros.bin", "w") as out:
        chunk = bytes(1 << 20)
        for _ in range(300):
            out.write(chunk)
    with pytest.raises(ClientError) as exc:
        server.client("lambda").create_function(**create_kwargs(fn_name, bomb.read_bytes()))
    assert error_code(exc) == ("InvalidParameterValueException", 400)
    assert "Unzipped size must be smaller than 262144000 bytes" in exc.value.response["Error"]["Message"]


def test_oversized_request_is_413(server: ServerProcess, fn_name: str) -> None:
    big = os.urandom(53 * 1024 * 1024)
    with pytest.raises(ClientError) as exc:
        server.client("lambda").create_function(**create_kwargs(fn_name, big))
    assert error_code(exc)[:2] == ("RequestEntityTooLargeException", 413)
    assert server.client("lambda").list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def _create_some(lam: Any, count: int) -> list[str]:
    names = [f"persist-{i}" for i in range(count)]
    for name in names:
        lam.create_function(
            **create_kwargs(name, make_zip({"handler.py": f"N = {name!r}\n"}), Tags={"n": name})
        )
    return names


def test_state_survives_restart_and_kill_9(new_server: Any, tmp_path: Path) -> None:
    first = new_server(tmp_path / "data")
    names = _create_some(first.client("lambda"), 5)
    first.client("lambda").get_waiter("function_active_v2").wait(
        FunctionName=names[0], WaiterConfig={"Delay": 0.1}
    )
    first.client("lambda").update_function_configuration(FunctionName=names[0], Timeout=42)
    assert first.stop(signal.SIGTERM) == 0

    second = new_server(tmp_path / "data")
    lam = second.client("lambda")
    listed = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert listed == names
    assert lam.get_function_configuration(FunctionName=names[0])["Timeout"] == 42
    assert lam.list_tags(Resource=lam.get_function(FunctionName=names[1])["Configuration"]["FunctionArn"])[
        "Tags"
    ] == {"n": names[1]}
    lam.create_function(**create_kwargs("after-restart", PY_ECHO))
    second.stop(signal.SIGKILL)

    third = new_server(tmp_path / "data")
    lam = third.client("lambda")
    assert "after-restart" in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    lam.get_waiter("function_active_v2").wait(FunctionName="after-restart", WaiterConfig={"Delay": 0.1})
    code = lam.get_function(FunctionName="after-restart")["Code"]["Location"]
    with urllib.request.urlopen(code) as download:
        assert download.read() == PY_ECHO


def test_sigterm_exits_cleanly(new_server: Any, tmp_path: Path) -> None:
    proc = new_server(tmp_path / "data2")
    assert proc.stop(signal.SIGTERM) == 0
    assert '"msg": "stopped"' in proc.log()


def test_cli_help_and_bad_settings() -> None:
    out = subprocess.run([sys.executable, "-m", "lambdad", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "serve" in out.stdout and "--endpoint-url" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lambdad", "serve", "--region", "moon"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "is not an AWS region name" in bad.stderr


def test_server_creates_keys_when_none_given(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDAD_", "AWS_"))}
    data = tmp_path / "keys"
    data.mkdir()
    proc = ServerProcess(data)
    port = proc.port
    child = subprocess.Popen(
        [sys.executable, "-m", "lambdad", "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        proc.proc = child  # type: ignore[assignment]
        proc.wait_ready(30)
        creds = json.loads((data / "credentials.json").read_text())
        assert oct((data / "credentials.json").stat().st_mode & 0o777) == "0o600"
        lam = proc.client("lambda", key=creds["access_key_id"], secret=creds["secret_access_key"])
        assert lam.list_functions()["Functions"] == []
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    assert f"export AWS_ACCESS_KEY_ID={creds['access_key_id']}" in err


def _mounts_below(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def _wait_for(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_mounts_of_a_killed_server_are_swept_at_the_next_start(new_server: Any, tmp_path: Path) -> None:
    """kill -9 leaves a sandbox's mounts on the host (its /tmp, a spare's slots); left alone they
    slow every later sandbox start. The next server sweeps them, and a second server on a data
    directory in use is refused."""
    killed_data, other_data = tmp_path / "killed", tmp_path / "other"
    killed = new_server(killed_data)
    runtime = Settings(data_dir=killed_data).sandbox_root()
    lam = killed.client("lambda")
    lam.create_function(**create_kwargs("mounted", PY_ECHO))
    lam.get_waiter("function_active_v2").wait(FunctionName="mounted", WaiterConfig={"Delay": 0.1})
    assert lam.invoke(FunctionName="mounted", Payload=b"{}")["StatusCode"] == 200
    _wait_for(lambda: len(_mounts_below(runtime)) >= 3)  # the environment's /tmp and the spares'

    busy = subprocess.run(
        [sys.executable, "-m", "lambdad", "serve", "--port", "1", "--data-dir", str(killed_data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert busy.returncode == 1 and "another lambdad server is running" in busy.stderr

    killed.stop(signal.SIGKILL)
    left = _mounts_below(runtime)
    assert left, "a killed server left nothing mounted: the sweep went untested"

    sweeper = new_server(other_data)
    assert not _mounts_below(runtime), "the next server left the dead server's mounts in place"
    assert not runtime.exists()
    assert '"msg": "swept what stopped servers left"' in sweeper.log()
    assert sweeper.client("lambda").list_functions()["Functions"] == []

    again = new_server(killed_data)  # the killed server's data is intact; its runtime is rebuilt
    lam = again.client("lambda")
    assert json.loads(lam.invoke(FunctionName="mounted", Payload=b'{"k": 1}')["Payload"].read()) == {"k": 1}


def _log_writers(data_dir: Path) -> list[int]:
    """Pids of the log writer processes that write ``data_dir``'s log store."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"lambdad.observe.logwriter" in argv and str(data_dir / "logs.db").encode() in argv:
                    found.append(int(entry.name))
    return found


def _gone(pids: list[int], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_log_writer_process_ends_with_the_server(new_server: Any, tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    server = new_server(data)
    lam = server.client("lambda")
    lam.create_function(**create_kwargs("writes-logs", PY_ECHO))
    lam.get_waiter("function_active_v2").wait(FunctionName="writes-logs", WaiterConfig={"Delay": 0.1})
    assert lam.invoke(FunctionName="writes-logs", Payload=b"{}")["StatusCode"] == 200
    time.sleep(0.5)  # the invoke's log lines are committed (a kill loses what is only buffered)
    writers = _log_writers(data)
    assert len(writers) == 1
    server.stop(sig)
    assert _gone(writers, 10.0), "the log writer outlived its server"
    # What the writer had committed is there for the next server.
    again = new_server(data)
    logs = again.client("logs")
    deadline = time.monotonic() + 10
    while not logs.describe_log_streams(logGroupName="/aws/lambda/writes-logs")["logStreams"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
