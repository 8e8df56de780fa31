"""The /opt trees of functions with layers: their layers merged in order, cached by content.

A function's layers are extracted in the order it lists them, later layers overwriting earlier
ones, as AWS does. One merged tree per ordered list of layer hashes lives at
``<root>/<sha256 of the ordered hashes>/``; files are hard links into the unpacked layer trees
(copies where linking fails), so merging costs inodes, not bytes. A tree is built under a temp name
and renamed into place, so readers (sandboxes) never see a partial one. Directories are 0755 and
files keep their modes, so the sandbox's uid can read everything and write nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from pathlib import Path

from lambdad.functions.codezip import TEMP_PREFIX
from lambdad.store.blobs import BlobStore

_DIR_MODE = 0o755


class OptTrees:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        self._lock = threading.Lock()
        self.clean_temp()

    def tree(self, layer_hashes: list[str]) -> Path | None:
        """The /opt tree of these layers (blob hex hashes, in the function's order); None without layers.

        Blocking: call it from a thread.
        """
        if not layer_hashes:
            return None
        if len(layer_hashes) == 1:  # nothing to merge: the layer's own unpacked tree is the tree
            return self.blobs.unpacked(layer_hashes[0])
        key = hashlib.sha256("\n".join(layer_hashes).encode()).hexdigest()
        target = self.root / key
        if target.is_dir():
            return target
        sources = [self.blobs.unpacked(sha) for sha in layer_hashes]
        with self._lock:
            if not target.is_dir():
                self._build(sources, target)
        return target

    def _build(self, sources: list[Path], target: Path) -> None:
        temp = self.root / f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
        temp.mkdir(mode=_DIR_MODE)
        try:
            for source in sources:
                _overlay(source, temp)
            temp.chmod(_DIR_MODE)
            try:
                temp.rename(target)
            except OSError:
                if not target.is_dir():  # only "another process won the race" is fine
                    raise
                shutil.rmtree(temp)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def clean_temp(self) -> None:
        """Remove trees left half-built by a crash."""
        for path in self.root.iterdir():
            if path.name.startswith(TEMP_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def _overlay(source: Path, dest: Path) -> None:
    """Put every entry of ``source`` into ``dest``; an entry of ``source`` replaces what is there."""
    for entry in os.scandir(source):
        target = dest / entry.name
        if entry.is_dir(follow_symlinks=False):
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            if not target.exists():
                target.mkdir(mode=_DIR_MODE)
                target.chmod(_DIR_MODE)
            _overlay(Path(entry.path), target)
            continue
        _remove(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
            continue
        try:
            os.link(entry.path, target)
        except OSError:
            shutil.copy2(entry.path, target)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
