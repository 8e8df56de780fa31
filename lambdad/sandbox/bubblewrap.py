"""Sandboxes built from bubblewrap (namespaces, mounts) and cgroups (limits).

How a process gets into its cgroup before it runs anything: the server starts ``/bin/sh`` (as
root, with an empty environment), which writes its own pid into each of the sandbox's
``cgroup.procs`` files and then execs ``setpriv`` (drop to the unprivileged sandbox uid), which
execs ``bwrap``. Every process of the sandbox therefore descends from a process that was already in
the cgroup, with no ``preexec_fn`` (which forces fork and is unsafe with threads) and no window in
which a child could escape. bwrap itself then runs unprivileged, so the sandbox's uid maps to an
unprivileged host uid rather than to root.

/tmp is an ext4 image on a loop device, mounted on the host and bound in. tmpfs pages would be
charged to the writer's memory cgroup (a 128 MB function could not fill a 512 MB /tmp without being
OOM-killed); page-cache pages of a real file system are reclaimable, so /tmp fills up with ENOSPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from lambdad.runtime import protocol as P
from lambdad.sandbox import cgroups, leftovers, seccomp
from lambdad.sandbox.base import (
    RUNTIME_DIR,
    AgentProcess,
    SandboxError,
    SandboxSpec,
    agent_args,
    agent_command,
    agent_head,
    no_memory_peak,
)

log = logging.getLogger("lambdad.sandbox")

#: Spares are made for the default /tmp size and the smallest memory size, then adjusted.
SPARE_EPHEMERAL_MB = 512
SPARE_MEMORY_MB = 128
#: Spares start at this nice level so that building them never slows down serving invocations.
SPARE_NICE = 10
#: Seconds without a spare being taken before the next one is built.
REFILL_QUIET_S = 0.2
AGENT_PARENT = "/var/lambdad"
SANDBOX_UID = 993
NOFILE = 1024
FS_OVERHEAD = 1.04  # ext4 metadata, so that about ephemeral_mb stays usable
ETC_FILES = ("ld.so.cache", "localtime", "nsswitch.conf", "mime.types", "protocols", "services")
ETC_DIRS = ("ssl", "ca-certificates", "pki", "crypto-policies")

_WRAPPER = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
)


def available() -> bool:
    return shutil.which("bwrap") is not None and os.geteuid() == 0


class BubblewrapSandbox(AgentProcess):
    def __init__(self, spec: SandboxSpec, workdir: Path, group: cgroups.Cgroup | None) -> None:
        super().__init__(spec.sandbox_id)
        self.spec = spec
        self.workdir = workdir
        self.group = group
        self.tmp_mounted = False
        #: Host mount points bound into a spare sandbox, with the function's code stacked on them.
        self.slots: list[Path] = []

    async def wait(self) -> int:
        assert self.proc is not None
        return _status(await self.proc.wait())

    def returncode(self) -> int | None:
        code = self.proc.returncode if self.proc else None
        return None if code is None else _status(code)

    def kill(self) -> None:
        if self.group is not None:
            self.group.kill_all()
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def limit_cpu(self) -> None:
        if self.group is not None:
            self.group.limit_cpu(cgroups.Limits(self.spec.memory_mb))

    def oom_killed(self) -> bool:
        return self.group is not None and self.group.oom_kills() > 0

    def memory_peak(self) -> Callable[[], int]:
        return self.group.peak_bytes if self.group is not None else no_memory_peak

    async def destroy(self) -> None:
        if not await self._release():
            return
        if self.group is not None:
            await asyncio.to_thread(self.group.remove)
        if self.tmp_mounted:
            leftovers.detach_mount(self.workdir / "tmp")
        for slot in self.slots:
            while leftovers.detach_mount(slot):  # the function's code, then the slot's own shared bind
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def _status(code: int) -> int:
    """asyncio's returncode for the outer bwrap: bwrap reports a signalled child as 128 + signal."""
    return -(code - 128) if code > 128 else code


_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_SHARED = 1, 2, 4, 32, 4096, 1 << 20


def _mount(source: Path | None, target: Path, flags: int) -> None:
    src = str(source).encode() if source is not None else None
    if _libc.mount(src, str(target).encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"mount {source} on {target} failed: {os.strerror(err)}")


def _shared_slot(path: Path) -> None:
    """Make ``path`` a shared mount point: what is later mounted on it appears inside a sandbox
    that bound it (bwrap's mounts are slaves of the host's), which is how a spare gets its code."""
    path.mkdir(mode=0o755)
    _mount(path, path, MS_BIND)
    _mount(None, path, MS_SHARED)


def _bind_read_only(source: Path, target: Path) -> None:
    _mount(source, target, MS_BIND)
    _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


class BubblewrapBackend:
    """Spawns bubblewrap sandboxes. ``work_root`` holds one small directory per sandbox."""

    name = "bubblewrap"
    isolated = True

    def __init__(self, work_root: Path, python: str = "/usr/bin/python3.11", node: str = "/usr/bin/node",
                 uid: int = SANDBOX_UID, spares: int = 0) -> None:  # fmt: skip
        self.work_root = work_root
        #: How many generic sandboxes to keep started ahead of demand (0: every sandbox starts cold).
        self.spares_wanted = spares
        self._spares: list[BubblewrapSandbox] = []
        self._refill: asyncio.Task[None] | None = None
        self._last_take = 0.0
        self._closing = False
        self.python = python
        self.node = node
        self.uid = uid
        self.cgroups = cgroups.detect()
        self._lock_fd: int | None = leftovers.claim(work_root.parent)
        leftovers.sweep(work_root.parent, work_root)
        if self.cgroups is not None:
            leftovers.sweep_cgroups(self.cgroups.bases.values())
        work_root.mkdir(parents=True, exist_ok=True)
        os.chmod(work_root, 0o711)
        self.etc = self._write_etc()
        self.runtime_dir = self._copy_runtime()

    def _copy_runtime(self) -> Path:
        """A copy of the in-sandbox code where the sandbox user can reach it: lambdad may be installed
        under a directory (such as /root) that uid 993 cannot traverse."""
        target = self.work_root / "runtime"
        staging = self.work_root / f".runtime-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(RUNTIME_DIR, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target

    def _write_etc(self) -> Path:
        etc = self.work_root / "etc"
        etc.mkdir(exist_ok=True)
        uid = self.uid
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:{uid}:{uid}::/tmp:/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nsbx_user1051:x:{uid}:\n")
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        for f in etc.iterdir():
            f.chmod(0o644)
        etc.chmod(0o755)
        return etc

    async def spawn(self, spec: SandboxSpec) -> BubblewrapSandbox:
        """A sandbox for ``spec``: a spare specialized for it when one fits, else a new one."""
        if self._spares and spec.ephemeral_mb == SPARE_EPHEMERAL_MB:
            self._last_take = time.monotonic()
            box = self._spares.pop()
            self._kick()
            try:
                self._specialize(box, spec)
            except BaseException:
                await box.destroy()
                raise
            return box
        self._kick()
        return await self._spawn(spec)

    def _specialize(self, box: BubblewrapSandbox, spec: SandboxSpec) -> None:
        """Give a waiting spare its function: code and layers mounted on its slots, its memory
        limit, and (sent with INIT) its environment and runtime. Same isolation as a cold start."""
        _bind_read_only(spec.code_dir, box.workdir / "task")
        if spec.opt_dir is not None:
            _bind_read_only(spec.opt_dir, box.workdir / "opt")
        if box.group is not None:
            box.group.apply(cgroups.Limits(spec.memory_mb))
            for pid in box.group.pids():  # spares are built at low priority; a function runs at normal
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, pid, 0)
        box.spec = spec
        box.init_header = {"argv": agent_args(spec, self.node), "env": spec.env}

    def _kick(self) -> None:
        """Start refilling the spares in the background, one at a time so a burst stays cheap."""
        wanted = self.spares_wanted and not self._closing and len(self._spares) < self.spares_wanted
        if wanted and (self._refill is None or self._refill.done()):
            self._refill = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while not self._closing and len(self._spares) < self.spares_wanted:
            # Serving comes first: a spare is built only once takes have paused for a moment.
            while (quiet := time.monotonic() - self._last_take) < REFILL_QUIET_S:
                await asyncio.sleep(REFILL_QUIET_S - quiet)
            try:
                box = await self._spawn_spare()
            except Exception:
                log.exception("starting a spare sandbox failed")
                return
            if self._closing:
                await box.destroy()
                return
            self._spares.append(box)

    async def start(self) -> None:
        self._kick()

    async def close(self) -> None:
        self._closing = True
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.gather(self._refill, return_exceptions=True)
        spares, self._spares = self._spares, []
        await asyncio.gather(*(box.destroy() for box in spares), return_exceptions=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _spawn_spare(self) -> BubblewrapSandbox:
        spec = SandboxSpec(
            sandbox_id=f"ld-spare-{uuid.uuid4().hex[:10]}",
            runtime="generic",
            code_dir=Path("/nonexistent"),
            opt_dir=None,
            memory_mb=SPARE_MEMORY_MB,
            ephemeral_mb=SPARE_EPHEMERAL_MB,
            handler="",
        )
        return await self._spawn(spec, spare=True)

    async def _spawn(self, spec: SandboxSpec, spare: bool = False) -> BubblewrapSandbox:
        workdir = self.work_root / spec.sandbox_id
        workdir.mkdir(mode=0o711)
        group = None
        if self.cgroups is not None:
            group = await asyncio.to_thread(
                self.cgroups.create, spec.sandbox_id, cgroups.Limits(spec.memory_mb)
            )
        box = BubblewrapSandbox(spec, workdir, group)
        try:
            if spare:
                for name in ("task", "opt"):
                    _shared_slot(workdir / name)
                    box.slots.append(workdir / name)
            await self._mount_tmp(box)
            await self._start(box, spare)
        except BaseException:
            await box.destroy()
            raise
        return box

    async def _mount_tmp(self, box: BubblewrapSandbox) -> None:
        image, mnt = box.workdir / "tmp.img", box.workdir / "tmp"
        mnt.mkdir()
        with open(image, "wb") as f:
            f.truncate(int(box.spec.ephemeral_mb * FS_OVERHEAD) * 1024 * 1024)
        owner = f"root_owner={self.uid}:{self.uid},nodiscard,lazy_itable_init=1"
        await _run(
            "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal,^resize_inode", "-E", owner, str(image)
        )
        # direct I/O on the backing file: its page cache would be charged to the sandbox a second time
        device = await _attach_loop(image)
        try:
            await _run("mount", "-o", "nosuid,nodev", device, str(mnt))
            box.tmp_mounted = True
        finally:
            await _run("losetup", "-d", device)  # detaches itself at the unmount (autoclear)
        image.unlink()  # the loop device keeps it alive until then

    def bwrap_args(self, spec: SandboxSpec, tmp: Path, control: str, spare: bool = False) -> list[str]:
        # --disable-userns: a function cannot create user namespaces of its own, which would give it
        # capabilities inside them and a much larger kernel attack surface.
        args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv",
                "--uid", str(self.uid), "--gid", str(self.uid), "--hostname", "localhost"]  # fmt: skip
        args += _root_mounts()
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", str(self.etc / name), f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(tmp), "/tmp"]
        if spare:  # empty slots now; the function's code is mounted on them when one is assigned
            code, opt = tmp.parent / "task", tmp.parent / "opt"
            args += ["--ro-bind", str(code), "/var/task", "--ro-bind", str(opt), "/opt"]
        else:
            args += ["--ro-bind", str(spec.code_dir), "/var/task"]
            if spec.opt_dir is not None:
                args += ["--ro-bind", str(spec.opt_dir), "/opt"]
        args += ["--ro-bind", str(self.runtime_dir), f"{AGENT_PARENT}/_lambdad_runtime"]
        if spare or spec.runtime.startswith("nodejs"):
            args += ["--ro-bind", str(self.runtime_dir / "node"), "/var/runtime"]
        args += ["--remount-ro", "/", "--chdir", "/var/task"]
        for key, value in {**spec.env, P.CONTROL_FD_ENV: control}.items():
            args += ["--setenv", key, value]
        agent = (
            [*agent_head(self.python, AGENT_PARENT), "generic"]
            if spare
            else agent_command(self.python, spec, AGENT_PARENT, self.node)
        )
        return [*args, "--", *agent]

    async def _start(self, box: BubblewrapSandbox, spare: bool = False) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        box.output_fd = rfd
        procs = [str(p) for p in box.group.procs_files()] if box.group else []
        setpriv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
        bwrap = self.bwrap_args(box.spec, box.workdir / "tmp", box.agent_env(), spare)
        filter_fd = seccomp.program_fd()
        passed = list(box.agent_fds)
        if filter_fd is not None:  # applied to the sandbox's first process, inherited by every other
            bwrap[1:1] = ["--seccomp", str(filter_fd)]
            passed.append(filter_fd)
        nice = ["nice", "-n", str(SPARE_NICE)] if spare else []
        argv = ["/bin/sh", "-c", _WRAPPER, "sh", str(len(procs)), *procs, *nice, "prlimit", f"--nofile={NOFILE}",
                "--", *setpriv, "--", *bwrap]  # fmt: skip
        try:
            box.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=wfd, stderr=wfd,
                pass_fds=passed, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise SandboxError(f"cannot start bwrap: {e}") from e
        finally:
            box.close_agent_fds()
            os.close(wfd)
            if filter_fd is not None:
                os.close(filter_fd)


def _root_mounts() -> list[str]:
    """A read-only root of /usr, the /lib*, /bin, /sbin links or directories, and a few /etc parts."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in ETC_FILES + ETC_DIRS:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


LOOP_CTL_GET_FREE = 0x4C82
LOOP_ATTACH_ATTEMPTS = 20


def _free_loop_device() -> str:
    """Ask the kernel for a free loop device, creating one if all are busy, and wait for its node.

    ``losetup --find`` does the same but opens /dev/loopN at once; on hosts without udev the node of a
    newly created device appears a moment later (devtmpfs), so past the pre-made devices it fails.
    """
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
    finally:
        os.close(control)
    device = f"/dev/loop{number}"
    for _ in range(200):
        if os.path.exists(device):
            return device
        time.sleep(0.005)
    with contextlib.suppress(FileExistsError):  # devtmpfs may have made it just now
        os.mknod(device, 0o660 | stat.S_IFBLK, os.makedev(7, number))
    return device


async def _attach_loop(image: Path) -> str:
    """Attach ``image`` to a loop device with direct I/O; retries when another sandbox raced for it."""
    error: SandboxError | None = None
    for _ in range(LOOP_ATTACH_ATTEMPTS):
        device = await asyncio.to_thread(_free_loop_device)
        try:
            await _run("losetup", "--direct-io=on", device, str(image))
            return device
        except SandboxError as exc:
            error = exc
    raise SandboxError(f"no loop device could be attached for /tmp: {error}")


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SandboxError(f"{argv[0]} failed ({proc.returncode}): {out.decode(errors='replace').strip()}")
    return out.decode()
