"""Deterministic function packages: the same directory always zips to the same bytes.

Entries are sorted, timestamps fixed, permissions reduced to 0644 or 0755 (the owner's exec bit
decides), and the umask, file system order and mtimes play no part, so an unchanged directory has
an unchanged CodeSha256 and ``lambdad deploy`` can skip the upload.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Directories never packaged: byte-code caches, version control, and lambdad's own data
#: directory (it holds the server's keys), when a function is deployed from the server's directory.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".lambdad"})
#: The earliest time a zip entry can carry.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: AWS's limit on a zip uploaded in the request (CreateFunction/UpdateFunctionCode ZipFile).
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
_CHUNK = 1 << 20


class PackageTooLarge(Exception):
    """The zip grew past ``MAX_ZIPPED_BYTES``; ``size`` is what it had reached."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    size: int
    executable: bool


def entries(root: Path) -> list[Entry]:
    """The files a package of ``root`` holds, sorted by name; symbolic links are followed."""
    return sorted(_walk(root), key=lambda e: e.name)


def _walk(root: Path) -> Iterator[Entry]:
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(root, followlinks=True):
        info = os.stat(top)
        if (info.st_dev, info.st_ino) in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(top, name)
            try:
                stat = path.stat()
            except FileNotFoundError:  # a dangling link
                continue
            yield Entry(path.relative_to(root).as_posix(), path, stat.st_size, bool(stat.st_mode & 0o100))


def build_zip(
    root: Path,
    on_progress: Callable[[int, int], None] | None = None,
    limit: int = MAX_ZIPPED_BYTES,
) -> bytes:
    """The zip of ``root``; ``on_progress(bytes_read, total_bytes)`` is called as files are read."""
    files = entries(root)
    total = sum(e.size for e in files)
    done = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for entry in files:
            done = _add(archive, entry, done, total, on_progress)
            if buffer.tell() > limit:
                raise PackageTooLarge(buffer.tell())
    if buffer.tell() > limit:
        raise PackageTooLarge(buffer.tell())
    return buffer.getvalue()


def _add(
    archive: zipfile.ZipFile,
    entry: Entry,
    done: int,
    total: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    info = zipfile.ZipInfo(entry.name, FIXED_TIME)
    info.create_system = 3  # unix, so external_attr carries the mode
    info.external_attr = (0o100755 if entry.executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with entry.path.open("rb") as source, archive.open(info, "w", force_zip64=entry.size > 1 << 30) as dest:
        while chunk := source.read(_CHUNK):
            dest.write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
    return done
