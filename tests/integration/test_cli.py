"""The client commands (deploy, invoke, logs, functions, usage) as a user runs them, against the real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ACCESS_KEY, SECRET_KEY, ServerProcess, free_port

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

HANDLER = """\
import os

def handler(event, context):
    print("hello from the cli test", event.get("n"))
    return {"greeting": os.environ.get("GREETING", "none"), "event": event}
"""
FAILING = 'def handler(event, context):\n    raise ValueError("boom from cli")\n'


def cli(
    server: ServerProcess,
    *args: str,
    cwd: Path,
    keys: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m lambdad ARGS`` with only the environment a user would set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDAD_"))}
    clean.update(
        LAMBDAD_ENDPOINT=server.endpoint,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    if keys:
        clean.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lambdad", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "fn").mkdir()
    (root / "fn" / "app.py").write_text(HANDLER)
    (root / "failing").mkdir()
    (root / "failing" / "app.py").write_text(FAILING)
    return root


@pytest.fixture(scope="module")
def name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def _arn_and_sha(stdout: str) -> tuple[str, str]:
    found = dict(line.split(":", 1) for line in stdout.splitlines())
    return found["FunctionArn"].strip(), found["CodeSha256"].strip()


def test_deploy_creates_then_updates(server: ServerProcess, lam: Any, work: Path, name: str) -> None:
    created = cli(
        server,
        "deploy",
        "fn",
        "--name",
        name,
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        cwd=work,
    )
    assert created.returncode == 0, created.stderr
    arn, sha = _arn_and_sha(created.stdout)
    assert arn.endswith(f":function:{name}")
    config = lam.get_function_configuration(FunctionName=name)
    assert (config["State"], config["CodeSha256"], config["Handler"]) == ("Active", sha, "app.handler")
    assert f"created {name}" in created.stderr

    (work / "fn" / "extra.txt").write_text("changed\n")
    updated = cli(server, "deploy", "fn", "--name", name, "--memory", "256", "--env", "GREETING=hi", cwd=work)
    assert updated.returncode == 0, updated.stderr
    assert _arn_and_sha(updated.stdout)[1] != sha
    assert "updated code and configuration (Environment, MemorySize)" in updated.stderr
    config = lam.get_function_configuration(FunctionName=name)
    assert (config["MemorySize"], config["Environment"]["Variables"]) == (256, {"GREETING": "hi"})
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")

    again = cli(server, "deploy", "fn", "--name", name, cwd=work)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stderr


def test_invoke_shows_result_logs_and_report(server: ServerProcess, work: Path, name: str) -> None:
    done = cli(server, "invoke", name, '{"n": 1}', cwd=work)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"greeting": "hi", "event": {"n": 1}}
    assert done.stdout.startswith('{\n  "greeting"')  # pretty
    assert "hello from the cli test 1" in done.stderr
    assert re.search(r"Duration: [\d.]+ ms  Billed Duration: \d+ ms  Memory Size: 256 MB", done.stderr)

    (work / "event.json").write_text('{"n": 2}')
    from_file = cli(server, "invoke", name, "--file", "event.json", cwd=work)
    assert json.loads(from_file.stdout)["event"] == {"n": 2}
    queued = cli(server, "invoke", name, "--async", '{"n": 3}', cwd=work)
    assert queued.returncode == 0, queued.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", queued.stdout)


def test_functions_table_lists_it(server: ServerProcess, work: Path, name: str) -> None:
    listed = cli(server, "functions", cwd=work)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST", "MODIFIED", "STATE"]
    row = next(r for r in rows if r.startswith(name + " "))
    assert row.split()[1:5] == ["python3.11", "256", "MB", "3"] and row.endswith("Active")


def test_logs_show_the_print_line(server: ServerProcess, work: Path, name: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        shown = cli(server, "logs", name, "--since", "1h", cwd=work)
        assert shown.returncode == 0, shown.stderr
        if "hello from the cli test 3" in shown.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "hello from the cli test 1" in shown.stdout
    assert "hello from the cli test 3" in shown.stdout  # the async one
    assert "REPORT RequestId:" in shown.stdout
    filtered = cli(server, "logs", name, "--filter", '"cli test 2"', cwd=work)
    assert [line.split(" ", 2)[2] for line in filtered.stdout.splitlines()] == ["hello from the cli test 2"]


def test_logs_follow_prints_new_events_until_interrupted(
    server: ServerProcess, work: Path, name: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDAD_"))}
    env.update(
        LAMBDAD_ENDPOINT=server.endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY
    )
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    follower = subprocess.Popen(
        [sys.executable, "-m", "lambdad", "logs", name, "--follow", "--since", "1s"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a runner that starts the tests in the background (`make test &`) hands
        # its children SIGINT ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(1.5)
        assert cli(server, "invoke", name, '{"n": 4}', cwd=work).returncode == 0
        time.sleep(2.5)
    finally:
        follower.send_signal(2)  # Ctrl-C
        out, err = follower.communicate(timeout=10)
    assert follower.returncode == 0, err
    assert "Traceback" not in err
    assert out.count("hello from the cli test 4") == 1


def test_usage_counts_the_invokes(server: ServerProcess, work: Path, name: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        shown = cli(server, "usage", "--data-dir", str(server.data_dir), cwd=work, keys=False)
        assert shown.returncode == 0, shown.stderr
        row = next((r.split() for r in shown.stdout.splitlines() if r.startswith(name + " ")), None)
        if (row and int(row[1]) >= 4) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row is not None, shown.stdout + shown.stderr
    requests, gb_seconds, errors, cost = row[1:]
    assert int(requests) >= 4 and float(gb_seconds) > 0 and errors == "0" and cost.startswith("$")
    assert shown.stdout.splitlines()[-1].startswith("TOTAL")
    assert "per million requests" in shown.stderr


def test_function_error_exits_1_with_the_error(server: ServerProcess, work: Path) -> None:
    failing = f"cli-fail-{uuid.uuid4().hex[:8]}"
    deployed = cli(
        server,
        "deploy",
        "failing",
        "--name",
        failing,
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        cwd=work,
    )
    assert deployed.returncode == 0, deployed.stderr
    failed = cli(server, "invoke", failing, cwd=work)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"] == "ValueError"
    assert "function error (Unhandled): ValueError: boom from cli" in failed.stderr


def test_unreachable_server(server: ServerProcess, work: Path) -> None:
    gone = cli(server, "functions", "--endpoint-url", f"http://127.0.0.1:{free_port()}", cwd=work)
    assert gone.returncode == 3
    assert "is `lambdad serve` running? start it with `make serve`" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_missing_function(server: ServerProcess, work: Path) -> None:
    for command in (["invoke", "no-such-fn"], ["logs", "no-such-fn"]):
        missing = cli(server, *command, cwd=work)
        assert missing.returncode == 1
        assert "Function not found" in missing.stderr and "`lambdad functions`" in missing.stderr


def test_credentials_from_the_data_dir_and_bad_keys(
    server: ServerProcess, work: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(
        json.dumps({"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY})
    )
    assert cli(server, "functions", "--data-dir", str(data), cwd=work, keys=False).returncode == 0
    none = cli(server, "functions", cwd=work, keys=False)
    assert none.returncode == 3 and "no credentials" in none.stderr
    wrong = cli(server, "functions", cwd=work, env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert wrong.returncode == 3 and "refused the credentials" in wrong.stderr


def test_deploy_refusals(server: ServerProcess, work: Path, tmp_path: Path) -> None:
    missing = cli(
        server, "deploy", "nowhere", "--name", "x", "--runtime", "python3.11", "--handler", "a.b", cwd=work
    )
    assert missing.returncode == 2 and "nowhere does not exist" in missing.stderr
    unknown = cli(
        server, "deploy", "fn", "--name", "cli-badrt", "--runtime", "python9.9", "--handler", "a.b", cwd=work
    )
    assert unknown.returncode == 1 and "InvalidParameterValueException" in unknown.stderr
    assert "python9.9" in unknown.stderr and "runtime" in unknown.stderr
    no_runtime = cli(server, "deploy", "fn", "--name", "cli-new", cwd=work)
    assert no_runtime.returncode == 2 and "give --runtime and --handler" in no_runtime.stderr

    big = tmp_path / "big"
    big.mkdir()
    with open(big / "blob.bin", "wb") as out:
        for _ in range(52):
            out.write(os.urandom(1 << 20))
    refused = cli(
        server,
        "deploy",
        str(big),
        "--name",
        "cli-big",
        "--runtime",
        "python3.11",
        "--handler",
        "a.b",
        cwd=work,
    )
    assert refused.returncode == 1
    assert "use layers or trim dependencies" in refused.stderr
    assert "zipping" in refused.stderr  # progress for packages over 5 MB, even off a terminal
