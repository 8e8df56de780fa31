"""Content-addressed storage for code and layer zips, and the unpacked trees made from them.

Blobs live at ``<root>/blobs/sha256/ab/abcdef...``: the name is the content's hash, so writes are
idempotent and two functions with the same package share one file. Unpacked trees are a cache
beside them at ``<root>/code/<hex>/``, extracted once and shared read-only by every sandbox.
Both are written under a temp name and renamed into place, so a crash leaves only temp names,
which ``clean_temp`` removes at start.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from lambdad.functions.codezip import TEMP_PREFIX, extract_zip

_HEX = re.compile(r"^[0-9a-f]{64}$")
_BLOB_MODE = 0o644


class BlobStore:
    """Code and layer zips as content-addressed files under <data_dir>/blobs/sha256/ab/abcdef...,
    plus unpacked trees cached by hash under <data_dir>/code/<hex>/ ."""

    def __init__(self, root: Path, code_root: Path | None = None) -> None:
        self._blobs = root / "blobs" / "sha256"
        # Unpacked trees are bound into sandboxes, so they may live outside the (private) data dir.
        self._code = code_root or root / "code"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._code.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256 hex. Idempotent; durable once it returns."""
        sha_hex = hashlib.sha256(data).hexdigest()
        path = self.path(sha_hex)
        if not path.exists():
            if not path.parent.exists():
                path.parent.mkdir(exist_ok=True)
                _fsync_dir(self._blobs)
            _write_atomically(path, data)
        return sha_hex

    def path(self, sha_hex: str) -> Path:
        """Where a blob lives. The hash is checked so a caller's string can never name another path."""
        _check_hex(sha_hex)
        return self._blobs / sha_hex[:2] / sha_hex

    def read(self, sha_hex: str) -> bytes:
        """The blob's bytes; FileNotFoundError if it was never stored or has been deleted."""
        return self.path(sha_hex).read_bytes()

    def exists(self, sha_hex: str) -> bool:
        return self.path(sha_hex).is_file()

    def delete(self, sha_hex: str) -> None:
        """Remove the blob and its unpacked tree; deleting what is not there is fine.

        The tree is first renamed to a temp name, so it disappears at once and a crash
        mid-removal leaves only something ``clean_temp`` removes.
        """
        self.path(sha_hex).unlink(missing_ok=True)
        with self._lock(sha_hex):
            tree = self._code / sha_hex
            doomed = self._code / f"{TEMP_PREFIX}deleted-{sha_hex}-{uuid.uuid4().hex}"
            try:
                tree.rename(doomed)
            except FileNotFoundError:
                return
            shutil.rmtree(doomed)

    def unpacked(self, sha_hex: str) -> Path:
        """The blob's extracted tree, made on first use; later calls are a single stat.

        Threads of this process serialize on a per-hash lock; another process extracting the
        same hash loses or wins the final rename, and either way the tree is whole.
        """
        tree = self._code / sha_hex
        _check_hex(sha_hex)
        if tree.is_dir():
            return tree
        with self._lock(sha_hex):
            if not tree.is_dir():
                self._extract(sha_hex, tree)
        return tree

    def clean_temp(self) -> None:
        """Remove temp files and directories left by a crash mid-write (call at server start)."""
        candidates = [*self._code.iterdir(), *self._blobs.glob("*/*")]
        for path in candidates:
            if path.name.startswith(TEMP_PREFIX):
                _remove(path)

    def _extract(self, sha_hex: str, tree: Path) -> None:
        try:
            extract_zip(self.read(sha_hex), tree)
        except FileExistsError:
            if not tree.is_dir():  # only "another process won the race" is fine
                raise

    def _lock(self, sha_hex: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(sha_hex, threading.Lock())


def _check_hex(sha_hex: str) -> None:
    if not _HEX.match(sha_hex):
        raise ValueError(f"not a sha256 hex digest: {sha_hex!r}")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp name, fsync, rename, fsync the directory: the blob is whole or absent."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _BLOB_MODE)
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
