"""What a server killed without cleaning up leaves on the host, and sweeping it away.

A sandbox mounts things on the host (its /tmp filesystem on a loop device, the shared slots a
spare gets its code through). A server that exits normally unmounts them; one killed with
``kill -9`` or lost with its machine cannot. Left alone, those mounts pile up: every new mount
namespace copies the whole mount table, so after a few hundred leaked mounts each sandbox start
is tens of times slower, and every leaked /tmp keeps a loop device and its image alive.

So a server holds a lock on its runtime directory while it runs (``claim``), and at start sweeps
what dead servers left: in its own runtime directory, and in the sibling directories of other
data directories under the default ``.../lambdad/`` parent whose lock nobody holds.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("lambdad.sandbox")

LOCK_NAME = ".server.lock"
CLAIM_TRIES = 30
MNT_DETACH = 2
LOOP_CLR_FD = 0x4C01
#: Default runtime directories are named by 12 hex digits of their data directory's hash.
_TAG = re.compile(r"[0-9a-f]{12}")
_OCTAL = re.compile(r"\\([0-7]{3})")
_libc = ctypes.CDLL(None, use_errno=True)


class RuntimeDirInUse(Exception):
    """Another live server holds the runtime directory (the same data directory)."""


def claim(runtime_dir: Path) -> int:
    """Lock ``runtime_dir`` for this server's lifetime; returns the fd that holds the lock.

    The kernel drops the lock when the process dies, however it dies, so a held lock means a live
    server. The fd is close-on-exec, so sandboxes never hold it.
    """
    lock = runtime_dir / LOCK_NAME
    for _ in range(CLAIM_TRIES):  # another server may be sweeping this directory right now
        runtime_dir.mkdir(parents=True, exist_ok=True)
        fd = _lock(lock)
        if fd is None:
            time.sleep(0.1)
            continue
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file a sweeper has just removed with its directory: again
    raise RuntimeDirInUse(
        f"another lambdad server is running with the runtime directory {runtime_dir} "
        "(the same --data-dir); stop it first, or give this one its own --data-dir"
    )


def sweep(runtime_dir: Path, sandboxes: Path) -> None:
    """Unmount what dead servers left: under ``sandboxes`` (ours, claimed), and in unclaimed
    sibling runtime directories, which are then removed (they hold only reproducible state)."""
    mounts = mount_points()
    ours = _below(sandboxes)
    released = _unmount(ours, mounts) + _detach_loops(ours)
    servers = 1 if released else 0
    if sandboxes.exists() and not any(map(ours, mount_points())):
        shutil.rmtree(sandboxes, ignore_errors=True)  # the dead server's sandbox directories
    parent = runtime_dir.parent
    if parent.name == "lambdad" and _TAG.fullmatch(runtime_dir.name):  # not an explicit --runtime-dir,
        swept, released_there = _sweep_siblings(runtime_dir, mounts)  # whose neighbours are not ours
        servers, released = servers + swept, released + released_there
    if servers or released:
        log.info("swept what stopped servers left", extra={"servers": servers, "mounts": released})


def _sweep_siblings(runtime_dir: Path, mounts: list[str]) -> tuple[int, int]:
    """Sweep and remove the unclaimed runtime directories beside ours: (servers, mounts released)."""
    parent = runtime_dir.parent
    servers = released = 0
    live = {runtime_dir.name}
    for other in sorted(parent.iterdir()):
        if other == runtime_dir or not _TAG.fullmatch(other.name) or not other.is_dir():
            continue
        fd = _lock(other / LOCK_NAME)
        if fd is None:
            live.add(other.name)
            continue
        try:
            released += _unmount(_below(other), mounts)
            shutil.rmtree(other, ignore_errors=True)
        finally:
            os.close(fd)
        servers += 1
    # Loop devices of any directory no live server holds, including ones already removed.
    prefix = str(parent) + "/"
    released += _detach_loops(
        lambda path: path.startswith(prefix) and path[len(prefix) :].split("/", 1)[0] not in live
    )
    return servers, released


def _below(directory: Path) -> Callable[[str], bool]:
    prefix = str(directory).rstrip("/") + "/"
    return lambda path: path.startswith(prefix)


def sweep_cgroups(bases: Iterable[Path], older_than_s: float = 60.0) -> int:
    """Remove the empty sandbox cgroups (``ld-*``) dead servers left. A live sandbox's group holds
    its agent from the moment it is started; one that has been empty for over a minute since it
    was made belongs to nobody, whichever server made it."""
    now = time.time()
    removed = 0
    for base in bases:
        for group in base.glob("ld-*"):
            try:
                if now - group.stat().st_mtime < older_than_s or (group / "cgroup.procs").read_text().strip():
                    continue
                group.rmdir()
            except OSError:
                continue
            removed += 1
    if removed:
        log.info("removed empty sandbox cgroups that stopped servers left", extra={"cgroups": removed})
    return removed


def mount_points() -> list[str]:
    """Every mount point of this mount namespace (/proc/self/mountinfo, octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4:
                points.append(_OCTAL.sub(lambda m: chr(int(m[1], 8)), fields[4]))
    return points


def detach_mount(point: str | Path) -> bool:
    """Lazily detach the top mount at ``point``; False when nothing (more) is mounted there."""
    return int(_libc.umount2(str(point).encode("utf-8", "surrogateescape"), MNT_DETACH)) == 0


def _unmount(picks: Callable[[str], bool], mounts: list[str]) -> int:
    """Detach every mount point ``picks``, deepest first, stacked ones included."""
    count = 0
    for point in sorted({p for p in mounts if picks(p)}, key=len, reverse=True):
        while detach_mount(point):
            count += 1
    return count


def _detach_loops(left_behind: Callable[[str], bool]) -> int:
    """Detach loop devices whose (deleted) backing file ``left_behind`` picks: a server killed
    between attaching a sandbox's /tmp image and mounting it leaves one without autoclear."""
    count = 0
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if not left_behind(backing.read_text().strip()):
                continue
            fd = os.open(f"/dev/{backing.parent.parent.name}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.ioctl(fd, LOOP_CLR_FD)
            count += 1
        except OSError:
            pass  # busy: it was still mounted, and unmounting it clears it (autoclear)
        finally:
            os.close(fd)
    return count


def _lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path`` (created if missing); None when it is held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
