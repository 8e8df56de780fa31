"""Validation and safe extraction of deployment-package zips.

A zip is hostile input: its names can climb out of the target directory, its symlinks can point
anywhere, its headers can lie about sizes, and its entries can share compressed bytes (the
"non-recursive zip bomb" of overlapping local headers). Every check here reads the archive
itself instead of trusting what it declares:

* the archive is planned first (names, entry types, symlink targets, overlaps, declared sizes),
  without decompressing anything but symlink targets;
* then every file is decompressed in chunks, counting the real bytes against the unzipped limit
  and a per-entry compression-ratio cap, whether we are only inspecting or also extracting.

Nested zips are ordinary files and are never opened.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from lambdad.http.errors import AwsError, InvalidParameterValueException, RequestEntityTooLargeException

MAX_ZIPPED_BYTES = 52_428_800
MAX_UNZIPPED_BYTES = 262_144_000

#: Upper bound on entries. AWS documents none, so this is ours: real packages within 250 MB stay
#: well below it (large node_modules trees reach tens of thousands of files; Java packages hold
#: jars, one entry each), while it bounds the inodes, syscalls and ZipInfo objects an upload can
#: cost us. A tree of 100,000 files is already ~2.6 KB per file inside the unzipped limit.
MAX_ENTRIES = 100_000

#: Per-entry ratio of real decompressed bytes to compressed bytes. Deflate cannot exceed about
#: 1032:1, so no deflated entry ever trips this; it stops bzip2/LZMA bombs (millions to one)
#: early, before they burn CPU decompressing up to the unzipped limit.
MAX_RATIO = 1100
#: Entries are allowed this many bytes whatever their ratio, so tiny compressed entries pass.
RATIO_GRACE_BYTES = 1 << 20

#: Longest symlink target we accept (Linux PATH_MAX).
MAX_LINK_TARGET = 4096
#: Symlink hops followed while resolving a target, as the kernel's ELOOP limit.
MAX_LINK_HOPS = 40

#: Prefix of the temp directories extraction leaves behind if the process dies mid-way.
TEMP_PREFIX = ".tmp-"

_CHUNK = 1 << 16
_DIR_MODE = 0o755
_DEFAULT_FILE_MODE = 0o644
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DRIVE = re.compile(r"^[A-Za-z]:")

_UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."
# What a corrupt, truncated, encrypted or exotic archive makes zipfile and its codecs raise
# (bz2 reports bad data as OSError, encryption is a RuntimeError, unknown methods NotImplementedError).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class ZipSummary:
    """What AWS reports about a package: CodeSha256 (base64), its hex twin, CodeSize and unzipped size."""

    sha256_b64: str
    sha256_hex: str
    size: int
    unzipped_size: int


class _Kind(Enum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"


@dataclass(frozen=True)
class _Entry:
    """One validated archive member: where it goes, what it is, and its sanitized mode."""

    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    kind: _Kind
    mode: int
    target: str = ""


def _rejected(name: str, why: str) -> AwsError:
    """AWS's unzip error, naming the offending entry (our wording; AWS gives no detail)."""
    shown = name if name.isprintable() else repr(name)[1:-1]  # no raw control characters in logs
    return InvalidParameterValueException(
        f"Could not unzip uploaded file. Entry '{shown}' {why}. "
        "Please check your file, then try to upload again."
    )


def _too_big() -> AwsError:
    return InvalidParameterValueException(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")


# --- planning: everything that can be decided without decompressing file contents -------------


def _open(data: bytes) -> zipfile.ZipFile:
    """Open the archive, turning every flavour of corruption into AWS's one message."""
    if len(data) > MAX_ZIPPED_BYTES:
        raise RequestEntityTooLargeException(f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _READ_ERRORS as exc:
        raise InvalidParameterValueException(_UNZIP_FAILED) from exc


def _normalize(name: str) -> tuple[str, ...]:
    """Split a member name into safe components, or reject it if it leaves the root.

    Backslashes count as separators: Windows tools write them, and on another OS ``..\\x``
    would otherwise reach a later consumer that does split on them.
    """
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise _rejected(name, "would be extracted outside the function's root")
    parts: list[str] = []
    for part in unified.split("/"):
        if part == "..":
            if not parts:
                raise _rejected(name, "would be extracted outside the function's root")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return tuple(parts)


def _kind_and_mode(info: zipfile.ZipInfo) -> tuple[_Kind, int]:
    """Entry type and permission bits from the unix half of external_attr.

    Files keep their exec bits but lose setuid/setgid/sticky and group/other write; entries
    without unix bits (Windows tools) get 0644, as AWS does. Directories are always 0755.
    """
    mode = info.external_attr >> 16
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFLNK:
        return _Kind.LINK, 0
    if fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _rejected(info.filename, "is a device, FIFO or socket")
    if fmt == stat.S_IFDIR or info.filename.endswith(("/", "\\")):
        return _Kind.DIR, _DIR_MODE
    perms = stat.S_IMODE(mode) & 0o777 & ~0o022
    return _Kind.FILE, perms if mode else _DEFAULT_FILE_MODE


def _read_link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """A symlink's target is the member's content; read at most PATH_MAX of it."""
    try:
        with zf.open(info) as member:
            raw = member.read(MAX_LINK_TARGET + 1)
    except _READ_ERRORS as exc:
        raise InvalidParameterValueException(_UNZIP_FAILED) from exc
    if not raw or len(raw) > MAX_LINK_TARGET or b"\0" in raw:
        raise _rejected(info.filename, "is a symlink with an invalid target")
    target = os.fsdecode(raw)
    if target.startswith("/"):
        raise _rejected(info.filename, "is a symlink pointing outside the function's root")
    return target


def _check_overlaps(data: bytes, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Reject members whose local header + data span overlaps another's or the central directory.

    Python 3.11.7's zipfile does not check this (CVE-2024-0450 was fixed later), and overlapping
    members are how one small block of compressed data gets decompressed thousands of times.
    """
    previous_end, previous_name = 0, ""
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < previous_end:
            raise _rejected(info.filename, f"overlaps entry '{previous_name}'")
        previous_end, previous_name = _member_end(data, info), info.filename
    if previous_end > zf.start_dir:
        raise _rejected(previous_name, "overlaps the central directory")


def _member_end(data: bytes, info: zipfile.ZipInfo) -> int:
    """Offset just past a member's compressed data, read from its real local header."""
    header = data[info.header_offset : info.header_offset + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size:
        raise InvalidParameterValueException(_UNZIP_FAILED)
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_SIGNATURE:
        raise InvalidParameterValueException(_UNZIP_FAILED)
    name_len, extra_len = int(name_len), int(extra_len)
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size


def _plan(data: bytes, zf: zipfile.ZipFile, max_unzipped: int) -> list[_Entry]:
    """Validate the archive's structure and return its members, ready to stream or extract."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InvalidParameterValueException(
            f"Could not unzip uploaded file. The archive has more than {MAX_ENTRIES} entries. "
            "Please check your file, then try to upload again."
        )
    if sum(info.file_size for info in infos) > max_unzipped:
        raise _too_big()  # declared sizes are only trusted to reject early, never to accept
    _check_overlaps(data, zf, infos)
    entries = [_entry(zf, info) for info in infos]
    entries = [entry for entry in entries if entry.parts]  # "./" names the root itself
    _check_tree(entries)
    return entries


def _entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry:
    parts = _normalize(info.filename)
    kind, mode = _kind_and_mode(info)
    target = _read_link_target(zf, info) if kind is _Kind.LINK else ""
    return _Entry(info, parts, kind, mode, target)


def _check_tree(entries: list[_Entry]) -> None:
    """Reject duplicates, members under a file or symlink, and symlinks that resolve outside.

    Refusing any path through a symlink member means extraction never follows a link it made,
    so link targets only need checking once, against the whole set of links.
    """
    kinds: dict[tuple[str, ...], _Kind] = {}
    for entry in entries:
        seen = kinds.get(entry.parts)
        if seen is not None and not (seen is entry.kind is _Kind.DIR):
            raise _rejected(entry.info.filename, "appears more than once")
        kinds[entry.parts] = entry.kind
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            if kinds.get(entry.parts[:depth], _Kind.DIR) is not _Kind.DIR:
                raise _rejected(entry.info.filename, "lies under a file or symlink entry")
    links = {entry.parts: entry.target for entry in entries if entry.kind is _Kind.LINK}
    for entry in entries:
        if entry.kind is _Kind.LINK and not _resolves_inside(entry.parts[:-1], entry.target, links):
            raise _rejected(entry.info.filename, "is a symlink pointing outside the function's root")


def _resolves_inside(base: tuple[str, ...], target: str, links: dict[tuple[str, ...], str]) -> bool:
    """Resolve ``target`` from directory ``base`` as the kernel would, following archive symlinks.

    A purely lexical check is not enough: with ``s -> ..`` at the root, ``d/l -> ../s/../x``
    looks inside but climbs out through ``s``.
    """
    resolved: list[str] = list(base)
    pending = [part for part in target.split("/") if part not in ("", ".")]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not resolved:
                return False
            resolved.pop()
            continue
        candidate = (*resolved, part)
        if candidate not in links:
            resolved.append(part)
            continue
        hops += 1
        hop_target = links[candidate]
        if hops > MAX_LINK_HOPS or hop_target.startswith("/"):
            return False
        pending[:0] = [p for p in hop_target.split("/") if p not in ("", ".")]
    return True


# --- streaming: real decompressed bytes, counted --------------------------------------------


class _Budget:
    """Counts real decompressed bytes against the archive limit and each entry's ratio cap."""

    def __init__(self, max_unzipped: int) -> None:
        self.max_unzipped = max_unzipped
        self.total = 0

    def charge(self, entry: _Entry, entry_total: int, chunk: int) -> None:
        self.total += chunk
        if self.total > self.max_unzipped:
            raise _too_big()
        cap = max(RATIO_GRACE_BYTES, entry.info.compress_size * MAX_RATIO)
        if entry_total > cap:
            raise _rejected(entry.info.filename, "has an implausible compression ratio")


def _chunks(zf: zipfile.ZipFile, entry: _Entry, budget: _Budget) -> Iterator[bytes]:
    """Yield a member's decompressed bytes, charging each chunk before anyone sees it.

    Read errors (bad CRC, truncated or corrupt streams, encryption, unknown methods) become
    AWS's unzip error here; errors in the consumer (a full disk) are not caught, as they are ours.
    """
    entry_total = 0
    try:
        with zf.open(entry.info) as member:
            while chunk := member.read(_CHUNK):
                entry_total += len(chunk)
                budget.charge(entry, entry_total, len(chunk))
                yield chunk
    except _READ_ERRORS as exc:
        raise InvalidParameterValueException(_UNZIP_FAILED) from exc


def _summary(data: bytes, unzipped: int) -> ZipSummary:
    digest = hashlib.sha256(data).digest()
    return ZipSummary(base64.b64encode(digest).decode(), digest.hex(), len(data), unzipped)


def inspect_zip(data: bytes, max_unzipped: int = MAX_UNZIPPED_BYTES) -> ZipSummary:
    """Validate a package without writing anything and return what AWS reports about it.

    Every file is decompressed (and discarded) so the unzipped size is the real one, not the
    one the headers claim.
    """
    with _open(data) as zf:
        entries = _plan(data, zf, max_unzipped)
        budget = _Budget(max_unzipped)
        for entry in entries:
            if entry.kind is _Kind.FILE:
                for _ in _chunks(zf, entry, budget):
                    pass
    return _summary(data, budget.total)


# --- extraction -------------------------------------------------------------------------------


def extract_zip(data: bytes, dest: Path, max_unzipped: int = MAX_UNZIPPED_BYTES) -> None:
    """Extract a package into ``dest``, which must not exist yet.

    Everything is written into a temp directory beside ``dest`` and renamed into place, so a
    rejected or failed extraction leaves nothing behind and readers never see a partial tree.
    Raises FileExistsError if ``dest`` exists (or appears meanwhile: another extractor won).
    """
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(dest)
    temp = dest.parent / f"{TEMP_PREFIX}{dest.name}-{uuid.uuid4().hex}"
    temp.mkdir(mode=0o700)
    try:
        _extract_into(data, temp, max_unzipped)
        _rename_into_place(temp, dest)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _rename_into_place(temp: Path, dest: Path) -> None:
    try:
        temp.rename(dest)
    except OSError as exc:
        if dest.exists():
            raise FileExistsError(dest) from exc
        raise


def _extract_into(data: bytes, root: Path, max_unzipped: int) -> None:
    """Write directories, then files, then symlinks (last, so nothing is written through one)."""
    with _open(data) as zf:
        entries = _plan(data, zf, max_unzipped)
        budget = _Budget(max_unzipped)
        for entry in sorted(entries, key=lambda e: _WRITE_ORDER[e.kind]):
            path = root.joinpath(*entry.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            if entry.kind is _Kind.DIR:
                path.mkdir(exist_ok=True)
            elif entry.kind is _Kind.FILE:
                _write_file(path, _chunks(zf, entry, budget), entry.mode)
            else:
                os.symlink(entry.target, path)
    _fix_dir_modes(root)


_WRITE_ORDER = {_Kind.DIR: 0, _Kind.FILE: 1, _Kind.LINK: 2}


def _write_file(path: Path, chunks: Iterator[bytes], mode: int) -> None:
    """Create the file exclusively and without following links, then set its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        os.fchmod(out.fileno(), mode)


def _fix_dir_modes(root: Path) -> None:
    """Directories are shared read-only by sandboxes of any uid: 0755 whatever the zip said."""
    root.chmod(_DIR_MODE)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):  # os.walk lists links to directories among dirnames
                os.chmod(path, _DIR_MODE)
