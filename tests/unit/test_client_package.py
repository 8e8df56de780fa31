"""The deploy zip builder: deterministic bytes, exec bits kept, caches and VCS left out."""

from __future__ import annotations

import os
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from lambdad.client import package
from lambdad.client.deploy import code_sha256


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("def handler(e, c):\n    return e\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "bootstrap").write_text("#!/bin/sh\n")
    (root / "bootstrap").chmod(0o700)
    (root / "node_modules" / "left").mkdir(parents=True)
    (root / "node_modules" / "left" / "index.js").write_text("module.exports = 1\n")
    for skipped in ("__pycache__", ".git", "pkg/__pycache__", ".lambdad"):
        (root / skipped).mkdir(exist_ok=True)
        (root / skipped / "junk").write_text("x")
    return root


def _modes(code: bytes) -> dict[str, int]:
    with zipfile.ZipFile(BytesIO(code)) as archive:
        return {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}


def test_same_tree_same_bytes_whatever_the_mtimes_and_order(tmp_path: Path) -> None:
    first = package.build_zip(_tree(tmp_path / "a"))
    b = _tree(tmp_path / "b")
    os.utime(b / "app.py", (1_700_000_000, 1_700_000_000))
    (b / "pkg" / "__init__.py").chmod(0o600)  # group/other bits do not matter, only the exec bit
    assert package.build_zip(b) == first
    assert code_sha256(first) == code_sha256(package.build_zip(b))


def test_entries_sorted_skips_caches_keeps_node_modules(tmp_path: Path) -> None:
    code = package.build_zip(_tree(tmp_path))
    assert list(_modes(code)) == ["app.py", "bootstrap", "node_modules/left/index.js", "pkg/__init__.py"]
    with zipfile.ZipFile(BytesIO(code)) as archive:
        assert {i.date_time for i in archive.infolist()} == {package.FIXED_TIME}
        assert archive.read("app.py").startswith(b"def handler")


def test_exec_bits_preserved(tmp_path: Path) -> None:
    modes = _modes(package.build_zip(_tree(tmp_path)))
    assert modes["bootstrap"] == 0o755
    assert modes["app.py"] == 0o644


def test_symlinked_files_are_followed_and_loops_end(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fn")
    (root / "linked.py").symlink_to(root / "app.py")
    (root / "pkg" / "loop").symlink_to(root)
    (root / "dangling").symlink_to(root / "missing")
    names = list(_modes(package.build_zip(root)))
    assert "linked.py" in names and "dangling" not in names
    assert not any(n.startswith("pkg/loop/pkg/loop") for n in names)


def test_too_large_stops_early(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(300_000))
    with pytest.raises(package.PackageTooLarge) as caught:
        package.build_zip(tmp_path, limit=100_000)
    assert caught.value.size > 100_000


def test_progress_reports_bytes_read(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"a" * 3_000_000)
    seen: list[tuple[int, int]] = []
    package.build_zip(tmp_path, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3_000_000, 3_000_000)
    assert len(seen) >= 2
