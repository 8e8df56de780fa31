"""Shared fixtures: one real lambdad server per test session, and fresh ones on demand."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ROLE, ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("lambdad") / "data").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers (for restart and kill tests); all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, args: list[str] | None = None) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / "data", extra_args=args or []).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda")


@pytest.fixture(scope="session")
def lam_unchecked(server: ServerProcess) -> Any:
    """A client that skips botocore's own parameter checks, so the server's checks are what we test."""
    return server.client("lambda", parameter_validation=False)


@pytest.fixture
def fn_name() -> str:
    return f"fn-{uuid.uuid4().hex[:12]}"


def create_kwargs(name: str, zip_bytes: bytes, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "handler.handler",
        "Code": {"ZipFile": zip_bytes},
    }
    kwargs.update(overrides)
    return kwargs
