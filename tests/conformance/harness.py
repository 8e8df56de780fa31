"""Drivers against the AWS recordings: registry, capture, allowed differences, per-entry results.

A *driver* performs one recorded test's call sequence against the real lambdad server and captures
named responses (``ctx.capture("create_response", ...)``). Every compared entry becomes its own
pytest id, ``<Class>::<test>::<entry>``. The entries of one recorded test are compared in the
recording's order with one set of placeholder bindings, so a value AWS recorded as the same
placeholder in two entries must be the same value in ours too (and different ones different).

Deliberate differences are listed in :data:`ALLOWED_DIFFERENCES` with their reason: each rewrites the
recorded value at matching paths to what lambdad answers instead, and the comparison stays exact.
"""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.conformance.normalize import Bindings, Difference, compare, normalize, normalize_error
from tests.serverproc import ROLE, ServerProcess, make_zip

RECORDED_DIR = Path(__file__).with_name("aws-recorded")
PREFIX = "tests/aws/services/lambda_/"
MISSING = object()
ECHO_SOURCE = "def handler(event, context):\n    return event\n"

# The recordings used python3.12 (and nodejs16.x/python3.9/3.10 for invokes); this host runs
# python3.11 and nodejs20.x only, so every driver creates python3.11 functions.
RUNTIME = "python3.11"
RUNTIME_REASON = "the host runs python3.11/nodejs20.x only; the recordings created python3.12 functions"

_RUNTIME_ENUM_AWS = (
    "[nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, "
    "python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, nodejs16.x, "
    "dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2]"
)


@dataclass(frozen=True)
class Allowed:
    """One deliberate difference: at ``path`` (a glob over dotted paths) of entries matching ``test``
    and ``entry`` (globs), AWS's ``recorded`` value is answered by lambdad as ``ours`` (MISSING: the
    key is absent in ours)."""

    test: str
    entry: str
    path: str
    recorded: Any
    ours: Any
    reason: str


ALLOWED_DIFFERENCES: list[Allowed] = [
    Allowed("*", "*", "*Runtime", "python3.12", RUNTIME, RUNTIME_REASON),
    Allowed("*", "*", "*Runtime", "python3.9", RUNTIME, RUNTIME_REASON.replace("python3.12", "python3.9")),
    Allowed("*", "*", "*CompatibleRuntimes[[]*[]]", "python3.12", RUNTIME, RUNTIME_REASON),
]


def allow(test: str, entry: str, path: str, recorded: Any, ours: Any, reason: str) -> None:
    """Register a deliberate difference next to the driver it belongs to."""
    ALLOWED_DIFFERENCES.append(Allowed(test, entry, path, recorded, ours, reason))


def _apply_allowed(test: str, entry: str, value: Any, path: str = "") -> Any:
    rules = [a for a in ALLOWED_DIFFERENCES if fnmatch.fnmatchcase(test, a.test)]
    rules = [a for a in rules if fnmatch.fnmatchcase(entry, a.entry)]
    if not rules:
        return value

    def walk(v: Any, p: str) -> Any:
        for rule in rules:
            if fnmatch.fnmatchcase(p, rule.path) and v == rule.recorded:
                return rule.ours
        if isinstance(v, dict):
            out = {}
            for k, sub in v.items():
                new = walk(sub, f"{p}.{k}" if p else k)
                if new is not MISSING:
                    out[k] = new
            return out
        if isinstance(v, list):
            return [walk(sub, f"{p}[{n}]") for n, sub in enumerate(v)]
        return v

    return walk(value, path)


def _drop_added(test: str, entry: str, value: Any, path: str = "") -> Any:
    """Our response less the keys an ``Allowed(recorded=MISSING)`` rule says AWS had not yet."""
    rules = [
        a
        for a in ALLOWED_DIFFERENCES
        if a.recorded is MISSING and fnmatch.fnmatchcase(test, a.test) and fnmatch.fnmatchcase(entry, a.entry)
    ]
    if not rules or not isinstance(value, dict | list):
        return value
    if isinstance(value, list):
        return [_drop_added(test, entry, v, f"{path}[{n}]") for n, v in enumerate(value)]
    out = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else k
        if not any(fnmatch.fnmatchcase(sub, a.path) for a in rules):
            out[k] = _drop_added(test, entry, v, sub)
    return out


_RECORDINGS: dict[str, dict[str, Any]] = {}


def recording(module: str, test: str) -> dict[str, Any]:
    """The recorded-content of ``<module>.py::<test>``."""
    if module not in _RECORDINGS:
        _RECORDINGS[module] = json.loads((RECORDED_DIR / f"{module}.snapshot.json").read_text())
    return dict(_RECORDINGS[module][f"{PREFIX}{module}.py::{test}"]["recorded-content"])


class Ctx:
    """What a driver works with: clients, unique names, captures and cleanup."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.lam = server.client("lambda")
        self.raw = server.client("lambda", parameter_validation=False)
        self.captured: dict[str, Any] = {}
        self.cleanups: list[Callable[[], Any]] = []

    def name(self, prefix: str = "fn") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def capture(self, entry: str, call: Callable[[], Any]) -> Any:
        """Run ``call``; keep its normalised response (or error) as ``entry``; return it raw."""
        try:
            response = call()
        except ClientError as error:
            self.captured[entry] = normalize_error(error)
            return error
        except ParamValidationError as error:
            self.captured[entry] = str(error)
            return error
        self.captured[entry] = normalize(response)
        return response

    def error(self, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            call()
        except ClientError as error:
            return normalize_error(error)
        raise AssertionError("expected an error")

    def create(
        self,
        entry: str | None = None,
        name: str | None = None,
        wait: bool = True,
        fixture: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """CreateFunction as LocalStack's ``create_lambda_function`` fixture does (it always sends
        ``Environment={"Variables": envvars}``, timeout 30, and its result is
        ``{"CreateFunctionResponse": ..., "CreateEventSourceMappingResponse": None}``); with
        ``fixture=False`` a plain CreateFunction whose response is captured as it is."""
        kwargs: dict[str, Any] = {
            "FunctionName": name or self.name(),
            "Runtime": RUNTIME,
            "Role": ROLE,
            "Handler": "handler.handler",
            # LocalStack zips the handler per function, so no two functions share a CodeSha256.
            "Code": {"ZipFile": make_zip({"handler.py": f"{ECHO_SOURCE}# {uuid.uuid4().hex}\n"})},
        }
        if fixture:
            kwargs.update(Timeout=30, Environment={"Variables": {}})
        kwargs.update(overrides)
        response = self.lam.create_function(**kwargs)
        self.cleanups.append(lambda: self.lam.delete_function(FunctionName=kwargs["FunctionName"]))
        if entry and not fixture:
            self.captured[entry] = normalize(response)
        elif entry:
            self.captured[entry] = {
                "CreateEventSourceMappingResponse": None,
                "CreateFunctionResponse": normalize(response),
            }
        if wait:
            self.wait_active(kwargs["FunctionName"])
        return dict(response)

    def wait_active(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            config = self.lam.get_function_configuration(FunctionName=name)
            if config.get("State") == "Active" and config.get("LastUpdateStatus") != "InProgress":
                return
            time.sleep(0.02)
        raise TimeoutError(f"{name} did not become Active")

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except ClientError:
                pass


@dataclass(repr=False)
class Driver:
    module: str
    test: str
    run: Callable[[Ctx], None]
    entries: list[str] | None
    xfails: dict[str, str]
    results: dict[str, Difference | str | None] = field(default_factory=dict)
    done: bool = False

    def __repr__(self) -> str:
        return f"Driver({self.test})"


DRIVERS: list[Driver] = []


def driver(
    module: str, test: str, entries: list[str] | None = None, xfail: dict[str, str] | None = None
) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    """Register a driver for ``<module>.py::<test>``; ``entries`` picks the compared entries (all the
    recorded ones by default); ``xfail`` maps entries to the lambdad bug that makes them differ."""

    def register(run: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        DRIVERS.append(Driver(module, test, run, entries, dict(xfail or {})))
        return run

    return register


def params(source: str) -> Iterator[Any]:
    """pytest params, one per compared entry of each driver defined in the Python module ``source``."""
    for drv in DRIVERS:
        if drv.run.__module__ != source:
            continue
        recorded = recording(drv.module, drv.test)
        for entry in drv.entries or list(recorded):
            assert entry in recorded, f"{drv.test}: no recorded entry {entry!r}"
            marks = []
            if entry in drv.xfails:
                marks.append(pytest.mark.xfail(strict=True, reason=drv.xfails[entry]))
            yield pytest.param(drv, entry, id=f"{drv.test}::{entry}", marks=marks)


def result(drv: Driver, entry: str, server: ServerProcess) -> Difference | str | None:
    """Run the driver once, then compare its captures with the recording in recorded order."""
    if not drv.done:
        ctx = Ctx(server)
        failure = ""
        try:
            drv.run(ctx)
        except Exception as exc:  # the entries captured before it are still compared
            failure = f"; the driver failed: {exc!r}"
        finally:
            ctx.close()
            drv.done = True
        recorded = recording(drv.module, drv.test)
        bindings = Bindings()
        wanted = set(drv.entries or recorded)
        for name, value in recorded.items():
            if name not in wanted:
                continue
            if name not in ctx.captured:
                drv.results[name] = f"the driver captured no {name!r}{failure}"
                continue
            expected = _apply_allowed(drv.test, name, value)
            ours = _drop_added(drv.test, name, ctx.captured[name])
            trial = bindings.copy()
            diff = compare(expected, ours, trial)
            if diff is None:
                bindings.values.update(trial.values)
            drv.results[name] = diff
    return drv.results.get(entry, f"no result for {entry!r}")


def check(drv: Driver, entry: str, server: ServerProcess) -> None:
    outcome = result(drv, entry, server)
    assert outcome is None, f"{drv.test}::{entry}: {outcome}"
