"""Builds lambdad's compiled hot path (lambdad/compiled.py says why): ``python -m lambdad.compiler``.

Needs mypy (the test extra), a C compiler and Python's headers; without them lambdad runs its
sources, so a failed build warns and never fails the setup.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lambdad.compiled import (
    COMPILED_DIR,
    HOT_MODULES,
    MANIFEST,
    PACKAGE_DIR,
    interpreter,
    is_current,
    source,
    sources_fingerprint,
)


def build(directory: Path = COMPILED_DIR) -> None:
    """Compile HOT_MODULES with mypyc into ``directory``, replacing what is there."""
    from mypyc.build import mypycify  # the test extra's mypy; only building needs it
    from setuptools import Distribution  # type: ignore[import-untyped]

    root = PACKAGE_DIR.parent
    sources = sources_fingerprint(HOT_MODULES)
    with tempfile.TemporaryDirectory(prefix="lambdad-mypyc-") as tmp:
        work = Path(tmp)
        cwd = os.getcwd()
        os.chdir(root)  # mypyc names modules by their path relative to the working directory
        try:
            extensions = mypycify(
                # botocore ships no types; where no pyproject.toml says so (an installed package, an
                # exported commit), mypy would refuse to build
                ["--ignore-missing-imports", *(str(source(m).relative_to(root)) for m in HOT_MODULES)],
                opt_level="3",
                multi_file=True,  # gcc -O3 takes a third less time on several files than on one
                group_name="lambdad_hot",
                target_dir=str(work / "c"),
            )
            dist = Distribution({"name": "lambdad-compiled", "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "tmp")
            dist.run_command("build_ext")
        finally:
            os.chdir(cwd)
        staged = work / "staged"
        staged.mkdir()
        files: dict[str, str] = {}
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        for built in (work / "lib").rglob("*" + suffix):
            name = str(built.relative_to(work / "lib"))[: -len(suffix)].replace("/", ".")
            target = staged / (name + suffix)
            shutil.copy2(built, target)
            files[name] = target.name
        missing = [m for m in HOT_MODULES if m not in files]
        if missing:
            raise RuntimeError(f"mypyc built no extension for {', '.join(missing)}")
        manifest = {"interpreter": interpreter(), "sources": sources, "files": files}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if directory.exists():
            shutil.rmtree(directory)
        shutil.move(str(staged), directory)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lambdad.compiler [--force]``: build unless the build is current.

    Never fails the setup: without a C compiler or Python's headers lambdad runs its sources.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--force" not in args and is_current():
        print(f"compiled hot-path modules are up to date ({COMPILED_DIR})")
        return 0
    print(f"compiling {len(HOT_MODULES)} hot-path modules with mypyc (a minute or two)...", flush=True)
    started = time.monotonic()
    try:
        build()
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error; lambdad runs its sources
        reason = "mypy found the errors above" if isinstance(exc, SystemExit) else str(exc)
        print(f"WARNING: mypyc build failed ({reason}); lambdad runs its Python sources", file=sys.stderr)
        shutil.rmtree(COMPILED_DIR, ignore_errors=True)
        return 0
    print(f"compiled {len(HOT_MODULES)} modules into {COMPILED_DIR} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
