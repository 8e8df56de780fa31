"""The compiled hot path (lambdad/compiled.py) is used only while it matches its sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdad import compiled

PACKAGE = Path(compiled.__file__).resolve().parent
PROBE = "import lambdad, lambdad.http.sigv4 as m; print(m.__file__); print(lambdad.compiled.state)"


@pytest.fixture(autouse=True)
def keep_state() -> Iterator[None]:
    before = compiled.state
    yield
    compiled.state = before


def _manifest(directory: Path, **changes: object) -> Path:
    directory.mkdir(exist_ok=True)
    manifest: dict[str, object] = {
        "interpreter": compiled.interpreter(),
        "sources": compiled.sources_fingerprint(compiled.HOT_MODULES),
        "files": {m: f"{m}.so" for m in compiled.HOT_MODULES},
    }
    manifest.update(changes)
    (directory / compiled.MANIFEST).write_text(json.dumps(manifest))
    return directory


def test_a_build_of_other_sources_is_not_used(tmp_path: Path) -> None:
    sources = compiled.sources_fingerprint(compiled.HOT_MODULES)
    sources["lambdad.http.sigv4"] = "0" * 64
    build = _manifest(tmp_path / "build", sources=sources)
    assert not compiled.is_current(build)
    assert compiled.install(build) is False
    assert compiled.state.startswith("off: sources changed")


def test_a_build_missing_a_module_is_not_used(tmp_path: Path) -> None:
    sources = compiled.sources_fingerprint(compiled.HOT_MODULES[1:])
    assert compiled.install(_manifest(tmp_path / "build", sources=sources)) is False


def test_a_build_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    build = _manifest(tmp_path / "build", interpreter="cpython-312 .cpython-312-x86_64-linux-gnu.so")
    assert not compiled.is_current(build)
    assert compiled.install(build) is False


def test_no_build_says_how_to_make_one(tmp_path: Path) -> None:
    assert compiled.install(tmp_path / "nothing") is False
    assert "make setup" in compiled.state


def test_the_matching_build_is_what_a_fresh_manifest_describes(tmp_path: Path) -> None:
    assert compiled.is_current(_manifest(tmp_path / "build"))


def _probe(pythonpath: Path, **env: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(pythonpath), **env},
        cwd=pythonpath,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.splitlines()


needs_build = pytest.mark.skipif(
    shutil.which("cc") is None, reason="no C compiler here, so `make setup` built no compiled modules"
)


@needs_build
def test_setup_built_the_hot_path_and_lambdad_loads_it() -> None:
    path, state = _probe(PACKAGE.parent)
    assert state == f"on ({len(compiled.HOT_MODULES)} modules)", (
        "run `make setup` (python -m lambdad.compiler)"
    )
    assert Path(path).parent == PACKAGE / "_compiled" and path.endswith(".so")


@needs_build
def test_the_sources_run_when_asked_or_when_edited_after_the_build(tmp_path: Path) -> None:
    path, state = _probe(PACKAGE.parent, LAMBDAD_PURE_PYTHON="1")
    assert path == str(PACKAGE / "http" / "sigv4.py") and "LAMBDAD_PURE_PYTHON" in state

    copy = tmp_path / "lambdad"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "environments" / "pool.py").open("a") as edited:
        edited.write("\n# an edit made after the build\n")
    path, state = _probe(tmp_path)
    assert path == str(copy / "http" / "sigv4.py")  # all or none: pool.py changed, sigv4 runs as source
    assert state.startswith("off: sources changed")
