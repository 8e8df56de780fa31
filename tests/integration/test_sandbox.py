"""Real bubblewrap sandboxes driven through Environment; no server needed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdad.environments.environment import Environment, InitFailure, InvokeOutcome, InvokeRequest
from lambdad.sandbox import bubblewrap, cgroups
from lambdad.sandbox import leftovers as sweeping
from lambdad.sandbox.base import SandboxSpec

pytestmark = pytest.mark.skipif(
    not bubblewrap.available() or not Path("/usr/bin/python3.11").exists(),
    reason="needs bwrap, root, python3.11",
)


@pytest.fixture(scope="module")
def backend() -> Iterator[bubblewrap.BubblewrapBackend]:
    root = Path(tempfile.mkdtemp(prefix="lambdad-test-"))
    root.chmod(0o711)  # the unprivileged bwrap must reach its bind sources
    be = bubblewrap.BubblewrapBackend(root / "sandboxes")
    if be.cgroups is None:
        pytest.skip("no writable cgroups")
    yield be
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def code_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lambdad-code-"))
    path.chmod(0o755)  # readable by the sandbox's unprivileged host uid
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write(code_dir: Path, name: str, source: str, mode: int = 0o644) -> None:
    path = code_dir / name
    path.write_text(textwrap.dedent(source))
    path.chmod(mode)


def spec_for(code: Path, handler: str = "app.handler", memory: int = 128, runtime: str = "python3.11",
             ephemeral: int = 512, env: dict[str, str] | None = None) -> SandboxSpec:  # fmt: skip
    base = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8", "TZ": ":UTC", "LAMBDA_TASK_ROOT": "/var/task"}  # fmt: skip
    return SandboxSpec(f"t-{uuid.uuid4().hex[:12]}", runtime, code, None, memory, ephemeral, handler,
                       {**base, **(env or {})})  # fmt: skip


def request(payload: Any = None, timeout: float = 10.0) -> InvokeRequest:
    return InvokeRequest(str(uuid.uuid4()), json.dumps(payload or {}).encode(), timeout,
                         "arn:aws:lambda:us-east-1:000000000000:function:fn")  # fmt: skip


def leftovers(sandbox_id: str, backend: bubblewrap.BubblewrapBackend) -> list[str]:
    found = [str(b / sandbox_id) for b in backend.cgroups.bases.values() if (b / sandbox_id).exists()]  # type: ignore[union-attr]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines() if sandbox_id in line]
    found += [line for line in Path("/proc/mounts").read_text().splitlines() if sandbox_id in line]
    if (backend.work_root / sandbox_id).exists():
        found.append(str(backend.work_root / sandbox_id))
    return found


def run_env(backend: bubblewrap.BubblewrapBackend, spec: SandboxSpec,
            body: Callable[[Environment], Awaitable[None]]) -> None:  # fmt: skip
    async def main() -> None:
        env = await Environment.start(backend, spec, 10)
        try:
            await body(env)
        finally:
            await env.destroy()
            await env.destroy()  # idempotent

    asyncio.run(main())
    assert leftovers(spec.sandbox_id, backend) == []


def as_json(outcome: InvokeOutcome) -> Any:
    return json.loads(outcome.payload)


def test_handler_globals_and_logs(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(
        code_dir,
        "app.py",
        """
        import logging
        count = 0
        def handler(event, context):
            global count
            count += 1
            print("call", count)
            logging.getLogger().warning("warned")
            return {"event": event, "count": count, "rid": context.aws_request_id,
                    "name": context.function_name, "mem": context.memory_limit_in_mb,
                    "arn": context.invoked_function_arn, "left": context.get_remaining_time_in_millis()}
    """,
    )

    async def body(env: Environment) -> None:
        assert env.init_duration_ms > 0
        first, second = request({"a": 1}), request({"b": 2})
        out1 = await env.invoke(first)
        out2 = await env.invoke(second)
        assert out1.kind == "ok" and out2.kind == "ok", (out1, out2)
        doc = as_json(out2)
        assert doc["event"] == {"b": 2} and doc["count"] == 2 and doc["rid"] == second.request_id
        assert doc["name"] == "fn" and doc["mem"] == "128" and doc["arn"].endswith(":function:fn")
        assert 0 < doc["left"] <= 10000
        assert b"call 1\n" in out1.log and b"call 2" not in out1.log and b"call 2\n" in out2.log
        assert b"[WARNING]\t" in out2.log and f"\t{second.request_id}\twarned".encode() in out2.log
        assert out2.max_memory_mb > 0

    run_env(backend, spec_for(code_dir), body)


def test_unhandled_error_and_marshal_error(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(
        code_dir,
        "app.py",
        """
        def handler(event, context):
            if event.get("set"):
                return {1, 2}
            raise ValueError("boom")
    """,
    )

    async def body(env: Environment) -> None:
        req = request()
        out = await env.invoke(req)
        assert out.kind == "function_error" and out.error_type == "ValueError"
        doc = as_json(out)
        assert doc["errorMessage"] == "boom" and doc["errorType"] == "ValueError"
        assert doc["requestId"] == req.request_id
        assert doc["stackTrace"][0].startswith('  File "/var/task/app.py", line 5, in handler')
        assert b"[ERROR] ValueError: boom" in out.log
        out = await env.invoke(request({"set": True}))
        assert out.error_type == "Runtime.MarshalError"
        assert (
            as_json(out)["errorMessage"]
            == "Unable to marshal response: Object of type set is not JSON serializable"
        )
        assert not out.environment_dead

    run_env(backend, spec_for(code_dir), body)


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
        (
            {"app.py": "x = 1\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(:\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app': ",
        ),
        ({}, "nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot': "),
    ],
)
def test_init_errors(backend: bubblewrap.BubblewrapBackend, code_dir: Path, files: dict[str, str], handler: str,
                     error_type: str, message: str) -> None:  # fmt: skip
    for name, source in files.items():
        write(code_dir, name, source)
    spec = spec_for(code_dir, handler)

    async def main() -> InitFailure:
        with pytest.raises(InitFailure) as info:
            await Environment.start(backend, spec, 10)
        return info.value

    failure = asyncio.run(main())
    assert failure.error_type == error_type
    assert failure.error_message.startswith(message)
    assert json.loads(failure.error_json)["errorType"] == error_type
    assert leftovers(spec.sandbox_id, backend) == []


def test_timeout_kills(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(
        code_dir,
        "app.py",
        """
        import time
        def handler(event, context):
            print("sleeping")
            time.sleep(30)
    """,
    )

    async def body(env: Environment) -> None:
        req = request(timeout=1.0)
        out = await env.invoke(req)
        assert out.kind == "timeout" and out.environment_dead and out.error_type == "Sandbox.Timedout"
        assert (
            as_json(out)["errorMessage"]
            == f"RequestId: {req.request_id} Error: Task timed out after 1.00 seconds"
        )
        assert b"sleeping" in out.log
        assert 1000 <= out.duration_ms < 2500

    run_env(backend, spec_for(code_dir), body)


def test_memory_limit_is_oom(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(
        code_dir,
        "app.py",
        """
        def handler(event, context):
            blocks = [bytearray(1024 * 1024) for _ in range(300)]
            return len(blocks)
    """,
    )

    async def body(env: Environment) -> None:
        req = request()
        out = await env.invoke(req)
        assert out.kind == "oom" and out.error_type == "Runtime.OutOfMemory", out
        assert as_json(out)["errorMessage"] == (
            f"RequestId: {req.request_id} Error: Runtime exited with error: signal: killed"
        )
        assert out.environment_dead

    run_env(backend, spec_for(code_dir), body)


def test_tmp_is_sized_and_not_charged_to_memory(
    backend: bubblewrap.BubblewrapBackend, code_dir: Path
) -> None:
    write(
        code_dir,
        "app.py",
        """
        import errno, os
        def handler(event, context):
            chunk = b"x" * (1024 * 1024)
            written = 0
            try:
                with open("/tmp/fill", "wb") as f:
                    for _ in range(600):
                        f.write(chunk)
                        written += 1
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                return {"written_mb": written, "errno": errno.errorcode[e.errno]}
            return {"written_mb": written, "errno": None}
    """,
    )

    async def body(env: Environment) -> None:
        out = await env.invoke(request(timeout=30))
        assert out.kind == "ok", (out, out.log)
        doc = as_json(out)
        assert doc["errno"] == "ENOSPC" and 480 <= doc["written_mb"] < 600, doc

    run_env(backend, spec_for(code_dir, memory=128, ephemeral=512), body)


def test_fork_bomb_is_contained(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(
        code_dir,
        "app.py",
        """
        import os, time
        def handler(event, context):
            for _ in range(5000):
                try:
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
                except OSError as e:
                    return {"error": e.strerror}
            return {"error": None}
    """,
    )

    async def body(env: Environment) -> None:
        out = await env.invoke(request(timeout=20))
        assert out.kind == "ok", out
        assert as_json(out)["error"] == "Resource temporarily unavailable"

    run_env(backend, spec_for(code_dir, memory=1769), body)  # one vCPU: 1024 forks take a while


def test_isolation_probes(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    write(
        code_dir,
        "app.py",
        f"""
        import os, socket
        def probe(fn):
            try:
                return fn()
            except Exception as e:
                return type(e).__name__
        def handler(event, context):
            def connect():
                socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
                return "connected"
            def write_task():
                open("/var/task/x", "w").write("x")
                return "written"
            return {{
                "pids": [p for p in os.listdir("/proc") if p.isdigit()],
                "root": probe(lambda: os.listdir("/root")),
                "home": probe(lambda: os.listdir("/home")),
                "work": probe(lambda: os.listdir({str(backend.work_root)!r})),
                "run": probe(lambda: os.listdir("/run")),
                "write_task": probe(write_task),
                "uid": os.getuid(),
                "connect": probe(connect),
                "ifaces": [name for _, name in socket.if_nameindex()],
                "env": sorted(os.environ),
                "nofile": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE),
            }}
    """,
    )
    os.environ["LAMBDAD_HOST_SECRET"] = "s3cret"

    async def body(env: Environment) -> None:
        out = await env.invoke(request())
        assert out.kind == "ok", out
        doc = as_json(out)
        assert len(doc["pids"]) <= 3, doc["pids"]  # bwrap's init and the agent
        assert doc["root"] in ("FileNotFoundError", []) and doc["home"] in ("FileNotFoundError", [])
        assert doc["work"] == "FileNotFoundError" and doc["run"] == "FileNotFoundError"
        assert doc["write_task"] in ("OSError", "PermissionError")
        assert doc["uid"] != 0
        assert doc["connect"] != "connected"
        assert doc["ifaces"] == ["lo"]
        assert "LAMBDAD_HOST_SECRET" not in doc["env"] and "_LAMBDAD_CONTROL_FD" not in doc["env"]
        assert set(doc["env"]) <= set(spec.env) | {"_X_AMZN_TRACE_ID", "LC_CTYPE"}
        assert doc["nofile"] == [1024, 1024]

    spec = spec_for(code_dir)
    try:
        run_env(backend, spec, body)
    finally:
        del os.environ["LAMBDAD_HOST_SECRET"]
        listener.close()


BOOTSTRAP = """\
#!/bin/sh
exec /usr/bin/python3.11 -u - <<'EOF'
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
        headers = dict(r.headers)
    print("custom runtime got", event)
    if event.get("fail"):
        body, path = json.dumps({"errorMessage": "nope", "errorType": "Custom"}).encode(), "/error"
    elif event.get("exit"):
        os._exit(3)
    else:
        body, path = json.dumps({"echo": event, "deadline": headers["Lambda-Runtime-Deadline-Ms"],
                                 "arn": headers["Lambda-Runtime-Invoked-Function-Arn"]}).encode(), "/response"
    req = urllib.request.Request(api + rid + path, data=body, method="POST",
                                 headers={"Lambda-Runtime-Function-Error-Type": "Custom"})
    urllib.request.urlopen(req).read()
EOF
"""


def test_provided_runtime_bootstrap(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    write(code_dir, "bootstrap", BOOTSTRAP, 0o755)

    async def body(env: Environment) -> None:
        out = await env.invoke(request({"x": 1}))
        assert out.kind == "ok", (out, out.log)
        doc = as_json(out)
        assert doc["echo"] == {"x": 1} and doc["arn"].endswith(":function:fn") and int(doc["deadline"]) > 0
        assert b"custom runtime got {'x': 1}" in out.log
        out = await env.invoke(request({"fail": True}))
        assert out.kind == "function_error" and out.error_type == "Custom"
        req = request({"exit": True})
        out = await env.invoke(req)
        assert out.kind == "crash" and out.environment_dead and out.error_type == "Runtime.ExitError"
        assert as_json(out)["errorMessage"] == (
            f"RequestId: {req.request_id} Error: Runtime exited with error: exit status 3"
        )

    run_env(backend, spec_for(code_dir, "unused", runtime="provided.al2023"), body)


def test_provided_runtime_without_bootstrap(backend: bubblewrap.BubblewrapBackend, code_dir: Path) -> None:
    spec = spec_for(code_dir, "unused", runtime="provided.al2023")

    async def main() -> InitFailure:
        with pytest.raises(InitFailure) as info:
            await Environment.start(backend, spec, 10)
        return info.value

    assert asyncio.run(main()).error_type == "Runtime.InvalidEntrypoint"
    assert leftovers(spec.sandbox_id, backend) == []


def spare_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="lambdad-spare-"))
    root.chmod(0o711)
    return root


async def backend_with_a_spare(root: Path) -> bubblewrap.BubblewrapBackend:
    """A backend under ``root`` that has built its one spare sandbox."""
    backend = bubblewrap.BubblewrapBackend(root / "sandboxes", spares=1)
    await backend.start()
    for _ in range(200):
        if backend._spares:
            return backend
        await asyncio.sleep(0.05)
    await backend.close()
    raise AssertionError("no spare sandbox was started")


def test_spare_finds_code_with_the_same_mtime_as_its_empty_slot(code_dir: Path) -> None:
    """File times are as coarse as a clock tick: code unpacked in the tick the spare's empty slot
    was made has the slot's mtime, and the import system's listing of the empty /var/task (taken
    by the spare's preload) must not survive the mount. Forced here by giving the code that mtime."""
    write(code_dir, "app.py", "def handler(event, context):\n    return 'found'\n")
    root = spare_root()

    async def main() -> None:
        backend = await backend_with_a_spare(root)
        spare = backend._spares[0]
        spare_id = spare.sandbox_id
        await asyncio.sleep(1)  # the spare's agent has preloaded, listing the empty /var/task
        slot = os.stat(spare.workdir / "task")
        os.utime(code_dir, ns=(slot.st_atime_ns, slot.st_mtime_ns))
        env = await Environment.start(backend, spec_for(code_dir), 10)
        try:
            assert env.sandbox.sandbox_id == spare_id, "the spare was not used"
            outcome = await env.invoke(request())
            assert (outcome.kind, as_json(outcome)) == ("ok", "found"), outcome.payload
        finally:
            await env.destroy()
            await backend.close()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_spare_sandbox_specializes_with_the_same_limits(code_dir: Path) -> None:
    """A sandbox started ahead of demand gets the function's code, environment and memory limit."""
    write(
        code_dir,
        "app.py",
        """
        import os
        def handler(event, context):
            if event.get("hog"):
                blocks = []
                while True:
                    blocks.append(bytearray(16 * 1024 * 1024))
            return {"var": os.environ.get("SPARE_VAR"), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}
        """,
    )
    root = spare_root()

    async def main() -> None:
        backend = await backend_with_a_spare(root)
        spare_id = backend._spares[0].sandbox_id
        spec = spec_for(code_dir, memory=256, env={"SPARE_VAR": "given"})
        env = await Environment.start(backend, spec, 10)
        assert env.sandbox.sandbox_id == spare_id, "the spare was not used"
        try:
            ok = await env.invoke(request())
            assert as_json(ok) == {"var": "given", "cwd": "/var/task", "files": ["app.py"]}
            assert env.init_duration_ms < 50
            hog = await env.invoke(request({"hog": True}, timeout=20))
            assert hog.kind == "oom" and hog.error_type == "Runtime.OutOfMemory"
        finally:
            await env.destroy()
            await backend.close()
        assert leftovers(spare_id, backend) == []

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(("memory", "quota_us"), [(128, 7235), (1769, 100_000), (3538, 200_000)])
def test_cpu_quota_is_proportional_to_memory(
    backend: bubblewrap.BubblewrapBackend, code_dir: Path, memory: int, quota_us: int
) -> None:
    """1769 MB = one vCPU, as on AWS; applied once init is done (init runs unthrottled)."""
    write(code_dir, "app.py", "def handler(event, context):\n    return 1\n")

    async def body(env: Environment) -> None:
        group = env.sandbox.group  # type: ignore[attr-defined]
        if group.version == 1:
            cpu = group.by_controller["cpu"]
            assert int((cpu / "cpu.cfs_quota_us").read_text()) == quota_us
            assert int((cpu / "cpu.cfs_period_us").read_text()) == 100_000
            limit = int((group.by_controller["memory"] / "memory.limit_in_bytes").read_text())
        else:
            assert (group.path / "cpu.max").read_text().split() == [str(quota_us), "100000"]
            limit = int((group.path / "memory.max").read_text())
        assert limit == memory * 1024 * 1024

    run_env(backend, spec_for(code_dir, memory=memory), body)


def test_empty_cgroups_of_dead_servers_are_swept() -> None:
    """A killed server leaves its sandboxes' cgroups behind, empty; the next server removes those
    that have been empty for a minute, and never a group with a process or one just made."""
    driver = cgroups.detect()
    if driver is None:
        pytest.skip("no writable cgroups")
    base = next(iter(driver.bases.values()))
    tag = uuid.uuid4().hex[:8]
    old, fresh, busy = (base / f"ld-test-{tag}-{kind}" for kind in ("old", "fresh", "busy"))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for group in (old, fresh, busy):
            group.mkdir()
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        minute_ago = time.time() - 120
        for group in (old, busy):
            os.utime(group, (minute_ago, minute_ago))
        assert sweeping.sweep_cgroups([base]) >= 1
        assert not old.exists(), "an empty, old group was left"
        assert fresh.exists() and busy.exists(), "a group in use (or just made) was removed"
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (old, fresh, busy):
            for _ in range(100):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
