"""Tests for package-zip validation and extraction, including hand-built hostile archives."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from lambdad.functions import codezip
from lambdad.functions.codezip import (
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    extract_zip,
    inspect_zip,
)
from lambdad.http.errors import AwsError, InvalidParameterValueException, RequestEntityTooLargeException

UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."
# (name, content, unix mode or 0 for "no unix bits", compression)
Spec = tuple[str, bytes, int, int]


def entry(name: str, data: bytes = b"", mode: int = 0o100644, method: int = zipfile.ZIP_DEFLATED) -> Spec:
    return (name, data, mode, method)


def link(name: str, target: str) -> Spec:
    return (name, target.encode(), stat.S_IFLNK | 0o777, zipfile.ZIP_STORED)


def make_zip(specs: Iterable[Spec]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names some tests need
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, mode, method in specs:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode << 16
                if not mode:  # as Windows tools write it: MS-DOS "archive" bit, no unix half
                    info.create_system, info.external_attr = 0, 0x20
                info.compress_type = method
                zf.writestr(info, data)
    return buf.getvalue()


def central_headers(data: bytes) -> list[int]:
    """Offsets of central-directory records (the tests' archives have no stray signatures)."""
    start = data.index(b"PK\x01\x02")
    return [i for i in range(start, len(data) - 3) if data[i : i + 4] == b"PK\x01\x02"]


def patch_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


def rejected(data: bytes, tmp_path: Path, exc: type[AwsError] = InvalidParameterValueException) -> str:
    """Assert both inspect and extract reject ``data`` and that extraction left nothing behind."""
    with pytest.raises(exc) as inspected:
        inspect_zip(data)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(exc) as extracted:
        extract_zip(data, work / "tree")
    assert list(work.iterdir()) == []
    assert inspected.value.message == extracted.value.message
    return inspected.value.message


# --- the good path ----------------------------------------------------------------------------


def test_inspect_reports_aws_hashes_and_true_sizes() -> None:
    data = make_zip([entry("index.py", b"print(1)\n" * 100), entry("lib/util.py", b"x = 1\n")])
    summary = inspect_zip(data)
    digest = hashlib.sha256(data).digest()
    assert summary.sha256_b64 == base64.b64encode(digest).decode()
    assert summary.sha256_hex == digest.hex()
    assert summary.size == len(data)
    assert summary.unzipped_size == 900 + 6


def test_extract_writes_contents_and_sanitizes_modes(tmp_path: Path) -> None:
    data = make_zip(
        [
            entry("bootstrap", b"#!/bin/sh\n", 0o100755),
            entry("suid", b"x", 0o104777),
            entry("private", b"p", 0o100600),
            entry("windows.txt", b"w", 0),
            entry("conf/", b"", stat.S_IFDIR | 0o700),
            entry("conf/app.json", b"{}"),
            entry("deep/er/file.txt", b"d"),
        ]
    )
    dest = tmp_path / "tree"
    extract_zip(data, dest)

    def mode(rel: str) -> int:
        return stat.S_IMODE((dest / rel).stat().st_mode)

    assert (dest / "bootstrap").read_bytes() == b"#!/bin/sh\n"
    assert mode("bootstrap") == 0o755
    assert mode("suid") == 0o755  # setuid and group/other write gone, exec kept
    assert mode("private") == 0o600
    assert mode("windows.txt") == 0o644
    assert (dest / "conf/app.json").read_bytes() == b"{}"
    assert mode("conf/app.json") == 0o644
    for directory in ("", "conf", "deep", "deep/er"):
        assert mode(directory) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]  # no temp dir left beside it


def test_symlinks_inside_the_root_are_recreated(tmp_path: Path) -> None:
    data = make_zip(
        [
            entry("lib/v1/mod.py", b"v1"),
            link("lib/current", "v1"),
            link("mod.py", "lib/current/mod.py"),
            link("self", "."),
        ]
    )
    dest = tmp_path / "tree"
    extract_zip(data, dest)
    assert (dest / "lib/current").is_symlink()
    assert (dest / "mod.py").read_bytes() == b"v1"
    assert str((dest / "mod.py").readlink()) == "lib/current/mod.py"
    assert inspect_zip(data).unzipped_size == 2


def test_nested_zip_is_just_a_file(tmp_path: Path) -> None:
    inner = make_zip([entry("../evil", b"boom")])
    dest = tmp_path / "tree"
    extract_zip(make_zip([entry("layer.zip", inner)]), dest)
    assert (dest / "layer.zip").read_bytes() == inner
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["layer.zip", "tree"]


def test_root_and_repeated_directory_entries_are_harmless(tmp_path: Path) -> None:
    data = make_zip([entry("./", mode=stat.S_IFDIR | 0o755), entry("a/"), entry("a/"), entry("a/./b", b"b")])
    extract_zip(data, tmp_path / "tree")
    assert (tmp_path / "tree/a/b").read_bytes() == b"b"


def test_header_claiming_more_than_the_real_size_reports_the_real_size() -> None:
    data = make_zip([entry("f", b"a" * 1000)])
    liar = patch_u32(data, central_headers(data)[0] + 24, 5000)
    assert zipfile.ZipFile(io.BytesIO(liar)).infolist()[0].file_size == 5000
    assert inspect_zip(liar).unzipped_size == 1000


def test_extract_refuses_an_existing_destination(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    with pytest.raises(FileExistsError):
        extract_zip(make_zip([entry("f", b"x")]), tmp_path / "tree")


# --- hostile names and entry types --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "a/../../evil",
        "/etc/cron.d/evil",
        "//server/share/x",
        "C:/evil",
        "c:evil",
        "..\\evil",
        "a\\..\\..\\x",
    ],
)
def test_paths_escaping_the_root_are_rejected(name: str, tmp_path: Path) -> None:
    message = rejected(make_zip([entry("ok.txt", b"fine"), entry(name, b"x")]), tmp_path)
    assert f"Entry '{name}' would be extracted outside the function's root" in message
    assert message.startswith("Could not unzip uploaded file.")


def test_dotdot_that_stays_inside_is_normalized(tmp_path: Path) -> None:
    extract_zip(make_zip([entry("a/../b.txt", b"b")]), tmp_path / "tree")
    assert (tmp_path / "tree/b.txt").read_bytes() == b"b"


@pytest.mark.parametrize(
    "specs",
    [
        [link("passwd", "/etc/passwd")],
        [link("a/b/x", "../../../x")],
        [link("x", "../../x")],
        # Lexically inside, but climbs out through another link: s -> .. then d/l -> ../s/x
        [link("s", ".."), entry("d/"), link("d/l", "../s/x")],
        [link("a", "b"), link("b", "a")],  # a loop never resolves
    ],
    ids=["absolute", "deep-relative", "relative", "through-a-link", "loop"],
)
def test_symlinks_pointing_outside_are_rejected(specs: list[Spec], tmp_path: Path) -> None:
    message = rejected(make_zip([entry("index.py", b"x"), *specs]), tmp_path)
    assert "is a symlink pointing outside the function's root" in message


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_special_files_are_rejected(kind: int, tmp_path: Path) -> None:
    message = rejected(make_zip([entry("dev", b"", kind | 0o666)]), tmp_path)
    assert "Entry 'dev' is a device, FIFO or socket" in message


@pytest.mark.parametrize(
    "specs",
    [
        [link("s", "d"), entry("d/"), entry("s/x", b"through the link")],
        [entry("a", b"file"), entry("a/b", b"under a file")],
        [entry("a", b"1"), entry("a", b"2")],
        [entry("a", b"1"), link("a", "b")],
        [entry("a/", b""), entry("a", b"2")],
    ],
    ids=["under-link", "under-file", "duplicate", "file-and-link", "dir-and-file"],
)
def test_conflicting_entries_are_rejected(specs: list[Spec], tmp_path: Path) -> None:
    message = rejected(make_zip(specs), tmp_path)
    assert "under a file or symlink entry" in message or "appears more than once" in message


def test_too_many_entries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(codezip, "MAX_ENTRIES", 10)
    inspect_zip(make_zip(entry(f"f{i}", b"x") for i in range(10)))
    message = rejected(make_zip(entry(f"f{i}", b"x") for i in range(11)), tmp_path)
    assert "more than 10 entries" in message


# --- corruption and size limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a zip at all",
        b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 1, 1, 46, 0, 0),
        b"PK\x03\x04" + bytes(100),
    ],
    ids=["empty", "garbage", "bad-eocd", "bare-local-header"],
)
def test_garbage_is_rejected_with_aws_message(data: bytes, tmp_path: Path) -> None:
    assert rejected(data, tmp_path) == UNZIP_FAILED


def test_truncated_archive_is_rejected(tmp_path: Path) -> None:
    data = make_zip([entry("f", bytes(range(256)) * 100)])
    assert rejected(data[: len(data) // 2], tmp_path) == UNZIP_FAILED


def test_corrupt_data_in_a_later_file_leaves_nothing(tmp_path: Path) -> None:
    data = make_zip([entry("first", b"a" * 5000, method=zipfile.ZIP_STORED), entry("second", b"b" * 5000)])
    second = data.index(b"second") + len(b"second")  # local header name, then compressed bytes
    corrupt = data[:second] + bytes(b ^ 0xFF for b in data[second : second + 8]) + data[second + 8 :]
    assert rejected(corrupt, tmp_path) == UNZIP_FAILED


def test_encrypted_entries_are_rejected(tmp_path: Path) -> None:
    data = make_zip([entry("f", b"secret")])
    flags_central = central_headers(data)[0] + 8
    data = data[:6] + b"\x01\x00" + data[8:flags_central] + b"\x01\x00" + data[flags_central + 2 :]
    assert rejected(data, tmp_path) == UNZIP_FAILED


def test_zipped_size_limit(tmp_path: Path) -> None:
    message = rejected(b"\0" * (MAX_ZIPPED_BYTES + 1), tmp_path, RequestEntityTooLargeException)
    assert message == "Zipped size must be smaller than 52428800 bytes"
    assert RequestEntityTooLargeException.status == 413


def test_unzipped_size_limit(tmp_path: Path) -> None:
    data = make_zip([entry("a", b"a" * 600), entry("b", b"b" * 600)])
    assert inspect_zip(data, max_unzipped=1200).unzipped_size == 1200
    with pytest.raises(InvalidParameterValueException) as err:
        inspect_zip(data, max_unzipped=1199)
    assert err.value.message == "Unzipped size must be smaller than 262144000 bytes"
    with pytest.raises(InvalidParameterValueException):
        extract_zip(data, tmp_path / "tree", max_unzipped=1199)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def zero_bomb() -> bytes:
    """300 MB of zeros streamed into one deflated entry: about 300 KB of zip."""
    buf = io.BytesIO()
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros", "w", force_zip64=True) as out:
            for _ in range(300):
                out.write(zeros)
    return buf.getvalue()


def test_zip_bomb_is_rejected(zero_bomb: bytes, tmp_path: Path) -> None:
    assert len(zero_bomb) < 1_000_000
    message = rejected(zero_bomb, tmp_path)
    assert message == f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"


def test_zip_bomb_whose_header_lies_is_rejected(zero_bomb: bytes, tmp_path: Path) -> None:
    """Claiming 1000 bytes gets past the declared-size check, but not the real read."""
    liar = patch_u32(zero_bomb, zero_bomb.rindex(b"PK\x01\x02") + 24, 1000)
    assert zipfile.ZipFile(io.BytesIO(liar)).infolist()[0].file_size == 1000
    assert rejected(liar, tmp_path) == UNZIP_FAILED


def test_absurd_compression_ratio_is_rejected(tmp_path: Path) -> None:
    """bzip2 packs 8 MB of zeros into ~50 bytes, far past anything deflate can produce."""
    data = make_zip([entry("zeros", bytes(8 << 20), method=zipfile.ZIP_BZIP2)])
    assert len(data) < 1000
    assert "Entry 'zeros' has an implausible compression ratio" in rejected(data, tmp_path)


def test_declared_sizes_over_the_limit_are_rejected_before_decompressing(tmp_path: Path) -> None:
    data = make_zip([entry("small", b"tiny")])
    boastful = patch_u32(data, central_headers(data)[0] + 24, 0xFFFFFFF0)
    assert rejected(boastful, tmp_path) == f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"


def test_budget_counts_real_bytes_across_entries() -> None:
    """zipfile stops at the declared size, so this guard is tested directly: it must not rely on it."""
    budget = codezip._Budget(max_unzipped=100)
    info = zipfile.ZipInfo("f")
    info.compress_size = 1
    item = codezip._Entry(info, ("f",), codezip._Kind.FILE, 0o644)
    budget.charge(item, 60, 60)
    with pytest.raises(InvalidParameterValueException, match="Unzipped size"):
        budget.charge(item, 41, 41)


# --- overlapping entries (the non-recursive zip bomb) --------------------------------------------


def test_entries_sharing_a_local_header_are_rejected(tmp_path: Path) -> None:
    data = make_zip([entry("a", b"x" * 100, method=zipfile.ZIP_STORED), entry("b", b"y" * 100)])
    second = central_headers(data)[1]
    overlapped = patch_u32(data, second + 42, 0)  # b's local-header offset -> a's
    assert "overlaps entry" in rejected(overlapped, tmp_path)


def test_entry_data_running_over_the_next_header_is_rejected(tmp_path: Path) -> None:
    data = make_zip([entry("a", b"x" * 100, method=zipfile.ZIP_STORED), entry("b", b"y" * 100)])
    first = central_headers(data)[0]
    overlapped = patch_u32(patch_u32(data, first + 20, 200), first + 24, 200)
    assert "Entry 'b' overlaps entry 'a'" in rejected(overlapped, tmp_path)


def test_entry_data_running_into_the_central_directory_is_rejected(tmp_path: Path) -> None:
    data = make_zip([entry("a", b"x" * 100, method=zipfile.ZIP_STORED)])
    first = central_headers(data)[0]
    overlapped = patch_u32(data, first + 20, 150)
    assert "overlaps the central directory" in rejected(overlapped, tmp_path)
