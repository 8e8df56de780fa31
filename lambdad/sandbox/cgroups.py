"""Per-sandbox cgroups on cgroup v1 (one directory per controller) or v2 (one directory).

The hierarchy in use is chosen at runtime by :func:`detect`. Sandbox cgroups are created below the
server's own cgroup, in a ``lambdad`` directory, so that limits placed on the server also bound them.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    pids: int = 1024

    def cpu_quota_us(self) -> int:
        return max(1000, CPU_PERIOD_US * self.memory_mb // MB_PER_VCPU)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path, default: int = 0) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return default
    return default if text in ("", "max") else int(text)


class _Counter:
    """A cgroup file read again and again through one open descriptor: one pread per reading instead
    of open, read and close (it is read after every invocation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def read(self) -> int:
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            text = os.pread(self.fd, 64, 0).strip()
        except OSError:
            return 0
        return 0 if text in (b"", b"max") else int(text)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_keyed(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except OSError:
        pass
    return 0


def _own_paths() -> dict[str, str]:
    """Controller (or '' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def _pids(procs: Path) -> list[int]:
    try:
        return [int(p) for p in procs.read_text().split()]
    except OSError:
        return []


def _rmdir(path: Path, attempts: int = 50) -> None:
    for _ in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.002)  # a killed task leaves the cgroup a moment after it dies
    path.rmdir()


class Cgroup:
    """One sandbox's cgroup directories."""

    version: int
    dirs: list[Path]
    _peak: _Counter

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> list[int]:
        return sorted({p for d in self.dirs for p in _pids(d / "cgroup.procs")})

    def kill_all(self) -> None:
        """SIGKILL every process until none is left (a fork bomb may still be forking)."""
        for _ in range(1000):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.001)

    def remove(self) -> None:
        self.kill_all()
        self._peak.close()
        for d in self.dirs:
            _rmdir(d)

    def apply(self, limits: Limits) -> None:
        """Memory and pids limits; may be called again to change them (a spare taking a function)."""
        raise NotImplementedError

    def limit_cpu(self, limits: Limits) -> None:
        """The steady-state CPU quota; set once init is done, since AWS runs init unthrottled."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def peak_bytes(self) -> int:
        raise NotImplementedError


class CgroupV1(Cgroup):
    version = 1

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.by_controller = dirs
        self.dirs = list(dirs.values())
        self._peak = _Counter(dirs["memory"] / "memory.max_usage_in_bytes")

    def apply(self, limits: Limits) -> None:
        mem = self.by_controller["memory"]
        limit = str(limits.memory_mb * 1024 * 1024)
        memsw = mem / "memory.memsw.limit_in_bytes"
        # memsw must stay >= the memory limit: raise memsw first when growing, the limit first when shrinking
        order = [mem / "memory.limit_in_bytes", memsw]
        if memsw.exists() and _read_int(memsw) < int(limit):
            order.reverse()
        for path in order:
            if path.exists():
                _write(path, limit)  # memsw equal to the limit: no swapping past it
        _write(self.by_controller["pids"] / "pids.max", str(limits.pids))

    def limit_cpu(self, limits: Limits) -> None:
        cpu = self.by_controller["cpu"]
        _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us()))

    def oom_kills(self) -> int:
        return _read_keyed(self.by_controller["memory"] / "memory.oom_control", "oom_kill")

    def peak_bytes(self) -> int:
        return self._peak.read()


class CgroupV2(Cgroup):
    version = 2

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirs = [path]
        self._peak = _Counter(path / "memory.peak")

    def apply(self, limits: Limits) -> None:
        _write(self.path / "memory.max", str(limits.memory_mb * 1024 * 1024))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (self.path / name).exists():
                _write(self.path / name, value)
        _write(self.path / "pids.max", str(limits.pids))

    def limit_cpu(self, limits: Limits) -> None:
        _write(self.path / "cpu.max", f"{limits.cpu_quota_us()} {CPU_PERIOD_US}")

    def kill_all(self) -> None:
        if (self.path / "cgroup.kill").exists():
            try:
                _write(self.path / "cgroup.kill", "1")
            except OSError:
                pass
        super().kill_all()

    def oom_kills(self) -> int:
        return _read_keyed(self.path / "memory.events", "oom_kill")

    def peak_bytes(self) -> int:
        return self._peak.read()


class CgroupDriver:
    """Creates sandbox cgroups on the hierarchy this host has."""

    def __init__(self, version: int, bases: dict[str, Path]) -> None:
        self.version = version
        self.bases = bases

    def create(self, name: str, limits: Limits) -> Cgroup:
        group: CgroupV1 | CgroupV2
        if self.version == 1:
            group = CgroupV1({c: base / name for c, base in self.bases.items()})
        else:
            group = CgroupV2(self.bases[""] / name)
        for d in group.dirs:
            d.mkdir()
        try:
            group.apply(limits)
        except BaseException:
            group.remove()
            raise
        return group


def detect(root: Path = ROOT) -> CgroupDriver | None:
    """The driver for this host's cgroups, or None where they are missing or not writable."""
    try:
        if (root / "cgroup.controllers").exists():
            return _prepare_v2(root)
        return _prepare_v1(root)
    except OSError:
        return None


def _prepare_v1(root: Path) -> CgroupDriver | None:
    own = _own_paths()
    bases: dict[str, Path] = {}
    for c in V1_CONTROLLERS:
        mount = root / c
        if c not in own or not (mount / "cgroup.procs").exists():
            return None
        base = mount / own[c].lstrip("/") / "lambdad"
        base.mkdir(exist_ok=True)
        bases[c] = base
    return CgroupDriver(1, bases)


def _prepare_v2(root: Path) -> CgroupDriver | None:
    own = root / _own_paths().get("", "/").lstrip("/")
    wanted = {"memory", "pids", "cpu"}
    if not wanted <= set((own / "cgroup.controllers").read_text().split()):
        return None
    base = own / "lambdad"
    base.mkdir(exist_ok=True)
    _enable_controllers(own, wanted)
    _enable_controllers(base, wanted)
    return CgroupDriver(2, {"": base})


def _enable_controllers(group: Path, wanted: set[str]) -> None:
    """Enable controllers for children; v2 forbids it while the group itself holds processes, so
    the server's processes move into a leaf 'lambdad-server' first (what container engines do)."""
    line = " ".join(f"+{c}" for c in sorted(wanted))
    try:
        _write(group / "cgroup.subtree_control", line)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        leaf = group / "lambdad-server"
        leaf.mkdir(exist_ok=True)
        for pid in _pids(group / "cgroup.procs"):
            try:
                _write(leaf / "cgroup.procs", str(pid))
            except OSError:
                pass
        _write(group / "cgroup.subtree_control", line)
