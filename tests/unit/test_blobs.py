"""Tests for the content-addressed blob store and its cache of unpacked trees."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest

from lambdad.functions import codezip
from lambdad.http.errors import InvalidParameterValueException
from lambdad.store import blobs
from lambdad.store.blobs import BlobStore


def make_zip(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


PACKAGE = make_zip({"bootstrap": (b"#!/bin/sh\necho hi\n", 0o100755), "lib/data.txt": (b"data", 0o100644)})


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "data")


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_put_read_round_trip_in_content_addressed_layout(store: BlobStore, tmp_path: Path) -> None:
    sha = store.put(PACKAGE)
    assert sha == hashlib.sha256(PACKAGE).hexdigest()
    assert store.path(sha) == tmp_path / "data/blobs/sha256" / sha[:2] / sha
    assert store.read(sha) == PACKAGE
    assert store.exists(sha)
    assert stat.S_IMODE(store.path(sha).stat().st_mode) & 0o022 == 0


def test_put_is_idempotent_and_leaves_no_temp_files(store: BlobStore, tmp_path: Path) -> None:
    sha = store.put(b"same bytes")
    first = store.path(sha).stat()
    assert store.put(b"same bytes") == sha
    assert store.path(sha).stat().st_ino == first.st_ino  # not rewritten
    assert all_files(tmp_path / "data") == [f"blobs/sha256/{sha[:2]}/{sha}"]


def test_missing_blobs(store: BlobStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(sha)
    with pytest.raises(FileNotFoundError):
        store.read(sha)
    store.delete(sha)  # deleting what is not there is fine


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, hashlib.sha256().hexdigest() + "/"]
)
def test_only_hex_digests_name_paths(store: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.path(bad)
    with pytest.raises(ValueError):
        store.unpacked(bad)


def test_unpacked_tree_keeps_exec_bits_and_shares_read_only_modes(store: BlobStore, tmp_path: Path) -> None:
    tree = store.unpacked(store.put(PACKAGE))
    assert tree.parent == tmp_path / "data/code"
    assert (tree / "bootstrap").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((tree / "bootstrap").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "lib/data.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "lib").stat().st_mode) == 0o755


def test_unpacked_extracts_once(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = codezip.extract_zip

    def counting(data: bytes, dest: Path, max_unzipped: int = 1 << 30) -> None:
        calls.append(dest)
        real(data, dest)

    monkeypatch.setattr(blobs, "extract_zip", counting)
    sha = store.put(PACKAGE)
    assert store.unpacked(sha) == store.unpacked(sha)
    assert len(calls) == 1


def test_concurrent_unpacked_threads_extract_once(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = codezip.extract_zip
    start = threading.Barrier(8)

    def slow_counting(data: bytes, dest: Path, max_unzipped: int = 1 << 30) -> None:
        calls.append(dest)
        time.sleep(0.05)  # widen the window in which an unlocked store would extract twice
        real(data, dest)

    monkeypatch.setattr(blobs, "extract_zip", slow_counting)
    sha = store.put(PACKAGE)
    results: list[Path] = []

    def worker() -> None:
        start.wait()
        results.append(store.unpacked(sha))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert len(calls) == 1
    assert sorted(p.name for p in results[0].parent.iterdir()) == [sha]


def test_losing_a_cross_process_race_is_fine(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process renamed its tree into place first: extract_zip raises FileExistsError."""
    real = codezip.extract_zip

    def other_process_wins(data: bytes, dest: Path, max_unzipped: int = 1 << 30) -> None:
        real(data, dest)
        raise FileExistsError(dest)

    monkeypatch.setattr(blobs, "extract_zip", other_process_wins)
    sha = store.put(PACKAGE)
    assert (store.unpacked(sha) / "bootstrap").is_file()


def test_delete_removes_blob_and_tree(store: BlobStore, tmp_path: Path) -> None:
    sha = store.put(PACKAGE)
    tree = store.unpacked(sha)
    store.delete(sha)
    assert not store.exists(sha)
    assert not tree.exists()
    assert all_files(tmp_path / "data") == []
    assert list((tmp_path / "data/code").iterdir()) == []


def test_unpacking_a_bad_blob_leaves_no_tree(store: BlobStore, tmp_path: Path) -> None:
    sha = store.put(make_zip({"../evil": (b"x", 0o100644)}))
    with pytest.raises(InvalidParameterValueException, match="outside the function's root"):
        store.unpacked(sha)
    assert list((tmp_path / "data/code").iterdir()) == []
    assert not (tmp_path / "data/evil").exists()


def test_clean_temp_removes_crash_leftovers_only(store: BlobStore, tmp_path: Path) -> None:
    sha = store.put(PACKAGE)
    tree = store.unpacked(sha)
    blob_dir = store.path(sha).parent
    (blob_dir / f".tmp-{sha}-dead").write_bytes(b"half a blob")
    half_tree = tmp_path / "data/code" / f".tmp-{sha}-dead"
    (half_tree / "sub").mkdir(parents=True)
    (half_tree / "sub/file").write_bytes(b"half a tree")
    store.clean_temp()
    assert sorted(p.name for p in blob_dir.iterdir()) == [sha]
    assert sorted(p.name for p in tree.parent.iterdir()) == [sha]
    assert (tree / "bootstrap").is_file()
    assert store.read(sha) == PACKAGE


def test_store_reopens_existing_data(tmp_path: Path) -> None:
    sha = BlobStore(tmp_path / "data").put(PACKAGE)
    again = BlobStore(tmp_path / "data")
    assert again.read(sha) == PACKAGE
    assert (again.unpacked(sha) / "lib/data.txt").read_bytes() == b"data"
