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

    async def list_versions(self, name: str) -> list[FunctionRecord]:
        """Every version of ``name``: ``$LATEST`` first, then published versions by number."""

    async def next_version(self, name: str) -> str:
        """Allocate the next version number of ``name`` (numbers are never reused)."""

    async def delete_version(self, name: str, version: str) -> list[str]:
        """Delete one published version; returns its code hash if no version uses it any more."""

    # Control-plane resources as JSON documents in named tables (aliases, policies, url_configs,
    # provisioned, layer_versions), keyed by (scope, key): e.g. (function name, alias name).

    async def create_doc(self, table: str, scope: str, key: str, doc: dict[str, Any]) -> None:
        """Insert; ConflictError if (scope, key) exists."""

    async def put_doc(self, table: str, scope: str, key: str, doc: dict[str, Any]) -> None: ...

    async def get_doc(self, table: str, scope: str, key: str) -> dict[str, Any] | None: ...

    async def list_docs(self, table: str, scope: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(scope, key, doc) rows of one scope (or all), ordered by scope then key."""

    async def delete_doc(self, table: str, scope: str, key: str | None = None) -> int:
        """Delete one document, or every document of ``scope`` when ``key`` is None; returns how many."""

    async def close(self) -> None: ...
