"""The store interface: what lambdad persists, independent of the database behind it.

SQLite implements it for a single node; a PostgreSQL implementation can follow for several nodes.
Records carry the function's configuration as AWS renders it (a JSON object), so the API layer can
answer reads without re-deriving fields, and the store stays ignorant of Lambda's semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class ConflictError(Exception):
    """The record already exists (the caller maps this to ResourceConflictException)."""


@dataclass
class FunctionRecord:
    """One version of a function: ``$LATEST`` (mutable) or a published number (immutable)."""

    name: str
    version: str
    #: FunctionConfiguration as AWS renders it, without per-request fields.
    config: dict[str, Any]
    #: sha256 hex of the code zip in the blob store.
    code_sha: str
    tags: dict[str, str] = field(default_factory=dict)
    #: Reserved concurrency; None means unreserved.
    reserved_concurrency: int | None = None


class Store(Protocol):
    """Persistence for the control plane. All methods are safe to call from the event loop."""

    async def create_function(self, record: FunctionRecord) -> None:
        """Insert ``$LATEST`` of a new function; ConflictError if the name exists."""

    async def put_function(self, record: FunctionRecord) -> None:
        """Replace an existing version's record."""

    async def get_function(self, name: str, version: str = "$LATEST") -> FunctionRecord | None: ...

    async def delete_function(self, name: str) -> list[str]:
        """Delete every version of ``name``; returns the code hashes no longer referenced."""

    async def code_in_use(self, code_sha: str) -> bool:
        """Whether any version of any function still uses this code blob."""

    async def list_functions(self, after: str | None, limit: int) -> list[FunctionRecord]:
        """``$LATEST`` records ordered by name, starting after ``after``."""

    async def function_stats(self) -> tuple[int, int]:
        """(number of functions, total code size in bytes over all versions)."""

    async def close(self) -> None: ...
