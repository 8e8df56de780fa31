"""The invoke path's modules compiled to C with mypyc, used only while they match their sources.

Why: warm latency and throughput are bounded by the event loop's thread, and two thirds of its time
is the interpreter running our own code (docs/performance.md). mypyc, mypy's compiler, turns these
fully annotated modules into C extensions with the same behaviour; calls, attribute reads and
arithmetic between them no longer go through the interpreter.

Why beside the package and not in place: an extension module next to its ``.py`` would shadow the
source, so an edit would silently not take effect. The build goes to ``lambdad/_compiled/`` with a
manifest of the sha256 of every source it was made from. At import the compiled modules are used
only if all of them still match (compiled modules call each other directly in C, so it is all or
none) and were built for this interpreter; otherwise lambdad runs its sources, and ``make setup``
(``python -m lambdad.compiler``) builds again. ``LAMBDAD_PURE_PYTHON=1`` runs the sources anyway.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
COMPILED_DIR = PACKAGE_DIR / "_compiled"
MANIFEST = "manifest.json"
PURE_ENV = "LAMBDAD_PURE_PYTHON"

#: The modules a warm invoke runs through in the server, from a profile of sequential invokes. The
#: sandbox's agent stays source: it runs inside the sandbox, maybe on another interpreter.
HOT_MODULES = (
    "lambdad.randomness",
    "lambdad.seconds",
    "lambdad.functions.arns",
    "lambdad.http.app",
    "lambdad.http.auth",
    "lambdad.http.awsmodel",
    "lambdad.http.server",
    "lambdad.http.sigv4",
    "lambdad.environments.channel",
    "lambdad.environments.environment",
    "lambdad.environments.pool",
    "lambdad.invoke.api",
    "lambdad.invoke.concurrency",
    "lambdad.invoke.loglines",
    "lambdad.invoke.service",
    "lambdad.observe.logstore",
    "lambdad.observe.metering",
    "lambdad.observe.metrics",
    "lambdad.sandbox.cgroups",  # the memory peak, read after every invoke
    "lambdad.runtime.protocol",  # the server's copy; the sandbox imports the source from its mount
)

#: What ``install`` found, for the server's ready line and the benchmark report.
state = "not loaded"


def source(module: str) -> Path:
    return PACKAGE_DIR.parent / (module.replace(".", "/") + ".py")


def sources_fingerprint(modules: Sequence[str]) -> dict[str, str]:
    return {m: hashlib.sha256(source(m).read_bytes()).hexdigest() for m in modules}


def interpreter() -> str:
    """Extensions are built for one interpreter ABI."""
    return f"{sys.implementation.cache_tag} {importlib.machinery.EXTENSION_SUFFIXES[0]}"


def _read_manifest(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _current(manifest: dict[str, object]) -> bool:
    if manifest.get("interpreter") != interpreter():
        return False
    try:
        return manifest.get("sources") == sources_fingerprint(HOT_MODULES)
    except OSError:
        return False


def is_current(directory: Path = COMPILED_DIR) -> bool:
    """True when ``directory`` holds a build of today's sources of HOT_MODULES for this interpreter."""
    manifest = _read_manifest(directory)
    return manifest is not None and _current(manifest)


class _CompiledFinder:
    """Finds the compiled extension of each module in the build, ahead of the source finder (a
    meta path finder by protocol: importlib.abc would cost the CLI 15 ms of imports)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install(directory: Path = COMPILED_DIR) -> bool:
    """Use the compiled modules if they are current; say why not in ``state`` otherwise."""
    global state
    if os.environ.get(PURE_ENV):
        state = f"off: {PURE_ENV} is set"
        return False
    manifest = _read_manifest(directory)
    if manifest is None:
        state = "off: not built (make setup builds them)"
        return False
    if not _current(manifest):
        state = "off: sources changed since the build (make setup builds them again)"
        return False
    files = manifest.get("files")
    if not isinstance(files, dict):
        state = "off: the manifest lists no files"
        return False
    sys.meta_path.insert(0, _CompiledFinder({name: directory / rel for name, rel in files.items()}))
    state = f"on ({len(HOT_MODULES)} modules)"
    return True
