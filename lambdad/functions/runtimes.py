"""Which AWS runtimes exist, which are retired, and which this host can really run.

A runtime is offered only when the host has what it needs inside the sandbox: an interpreter under
/usr (bound read-only into every sandbox) of the right major version. ``provided.*`` needs nothing:
the function brings its own ``bootstrap``.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lambdad.http.errors import InvalidParameterValueException

#: Runtimes AWS accepts today, in the order AWS lists them in its error message.
AWS_RUNTIMES = (
    "nodejs20.x python3.14 provided.al2023 python3.12 python3.13 nodejs24.x nodejs22.x java25 python3.10 "
    "python3.11 java21 ruby3.3 ruby3.4 ruby3.2 python3.8 python3.9 java17 nodejs16.x dotnet10 dotnet8 java11 "
    "dotnet6 nodejs18.x provided.al2 java8.al2"
).split()

#: Runtimes AWS no longer lets anyone create or update functions with.
RETIRED_RUNTIMES = frozenset(
    "java8 go1.x provided ruby2.7 ruby2.5 nodejs14.x nodejs12.x nodejs10.x nodejs8.10 nodejs6.10 nodejs4.3 "
    "nodejs4.3-edge nodejs python3.7 python3.6 python2.7 dotnetcore3.1 dotnetcore2.1 dotnetcore2.0 "
    "dotnetcore1.0".split()
)


@dataclass(frozen=True)
class RuntimeInfo:
    """How to start one runtime inside a sandbox."""

    name: str
    #: "python", "node" or "custom": which in-sandbox launcher runs it.
    family: str
    #: Interpreter on the host (and so in the sandbox, since /usr is bound read-only); None for custom.
    interpreter: Path | None
    #: Value of AWS_EXECUTION_ENV, as AWS sets it.
    execution_env: str | None


def _python(version: str) -> RuntimeInfo | None:
    for candidate in (Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")):
        if candidate.exists():
            return RuntimeInfo(f"python{version}", "python", candidate, f"AWS_Lambda_python{version}")
    return None


def _node() -> RuntimeInfo | None:
    found = shutil.which("node", path="/usr/bin:/usr/local/bin")
    if found is None:
        return None
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = re.match(r"v(\d+)\.", out)
    if major is None:
        return None
    name = f"nodejs{major.group(1)}.x"
    return RuntimeInfo(name, "node", Path(found), f"AWS_Lambda_{name}")


@functools.cache
def installed_runtimes() -> dict[str, RuntimeInfo]:
    """Detect once per process which runtimes this host can run."""
    found: dict[str, RuntimeInfo] = {}
    for version in ("3.10", "3.11", "3.12", "3.13", "3.14"):
        info = _python(version)
        if info is not None:
            found[info.name] = info
    node = _node()
    if node is not None and node.name in AWS_RUNTIMES:
        found[node.name] = node
    for name in ("provided.al2023", "provided.al2"):
        found[name] = RuntimeInfo(name, "custom", None, None)
    return found


def check_runtime(runtime: str) -> RuntimeInfo:
    """Return the runtime's launch info or raise the error AWS (or this host) gives for it."""
    if runtime in RETIRED_RUNTIMES:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions."
        )
    if runtime not in AWS_RUNTIMES:
        raise InvalidParameterValueException(
            f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(AWS_RUNTIMES)}] or be a valid ARN"
        )
    installed = installed_runtimes()
    if runtime not in installed:
        raise InvalidParameterValueException(
            f"The runtime {runtime} is not installed on this lambdad host. Runtimes available here: "
            f"[{', '.join(sorted(installed))}]. Install the interpreter under /usr (for example "
            "'apt-get install python3.12') and restart lambdad, or choose an available runtime."
        )
    return installed[runtime]
