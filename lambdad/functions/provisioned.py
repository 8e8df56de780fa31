"""Provisioned concurrency: Put/Get/Delete/ListProvisionedConcurrencyConfigs.

A config belongs to a published version or an alias and is stored in the ``provisioned`` table
under (function, qualifier), shaped as GetProvisionedConcurrencyConfig renders it, plus the version
it was provisioned for (``_version``). Put answers IN_PROGRESS at once; a background task asks the
``Warmer`` (the invoke side) to start that many environments and then records READY, or FAILED
with a StatusReason.

Concurrency accounting, kept simple: provisioned executions are carved out of the function's
reserved concurrency when it has one (their sum may not exceed it), otherwise out of the account's
unreserved concurrency (with AWS's minimum left over). Invocations that run on provisioned
environments take ordinary concurrency leases, so they count against the reserved concurrency as
on AWS; environments merely waiting warm hold no lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lambdad.functions import configuration as cfg
from lambdad.functions.versions import is_number
from lambdad.http.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
)

if TYPE_CHECKING:
    from lambdad.functions.service import FunctionService

log = logging.getLogger("lambdad.provisioned")

TABLE = "provisioned"
DEFAULT_PAGE = 50
NOT_FOUND = "No Provisioned Concurrency Config found for this function"
NOT_PUBLISHED = "The function resource provided must be an alias or a published version."


class Warmer(Protocol):
    async def provision(self, name: str, version: str, count: int) -> int:
        """Start ``count`` environments of the version and keep them warm; returns how many started."""

    def release(self, name: str, version: str) -> None:
        """The version's provisioned environments become ordinary ones (reaped when idle)."""


def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class ProvisionedService:
    def __init__(self, functions: FunctionService, warmer: Warmer) -> None:
        self.functions = functions
        self.store = functions.store
        self.arns = functions.arns
        self.warmer = warmer
        self._tasks: set[asyncio.Task[None]] = set()
        #: Versions with provisioned environments, per function: released once no config asks for them.
        self._warm: dict[str, set[str]] = {}
        functions.listeners.append(self._function_changed)

    async def _function_changed(self, name: str) -> None:
        """An alias or version went away (with its config): release what no config asks for."""
        if name not in self._warm:
            return
        wanted = {doc["_version"] for _, _, doc in await self.store.list_docs(TABLE, name)}
        for version in self._warm[name] - wanted:
            self.warmer.release(name, version)
        self._warm[name] &= wanted

    async def _target(self, params: Mapping[str, Any], latest_message: str) -> tuple[str, str, str]:
        """(function, qualifier, version it runs) of a version or alias that exists."""
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        qualifier = ref.qualifier
        if qualifier is None or qualifier == "$LATEST":
            if qualifier is None:
                await self.functions.load_version(ref.name, "$LATEST")
            raise InvalidParameterValueException(latest_message)
        if is_number(qualifier):
            await self.functions.load_version(ref.name, qualifier, qualifier)
            return ref.name, qualifier, qualifier
        alias = await self.store.get_doc("aliases", ref.name, qualifier)
        if alias is None:
            arn = self.arns.function(ref.name, qualifier)
            raise ResourceNotFoundException(f"Cannot find alias arn: {arn}")
        return ref.name, qualifier, str(alias["FunctionVersion"])

    async def put(self, params: Mapping[str, Any]) -> dict[str, Any]:
        latest = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
        name, qualifier, version = await self._target(params, latest)
        wanted = int(params["ProvisionedConcurrentExecutions"])
        async with self.functions.lock(name):
            others = [
                (key, doc) for _, key, doc in await self.store.list_docs(TABLE, name) if key != qualifier
            ]
            self._check_conflicts(qualifier, version, others)
            await self._check_limits(
                name, wanted + sum(d["RequestedProvisionedConcurrentExecutions"] for _, d in others)
            )
            previous = await self.store.get_doc(TABLE, name, qualifier)
            doc = {
                "RequestedProvisionedConcurrentExecutions": wanted,
                "AvailableProvisionedConcurrentExecutions": 0,
                "AllocatedProvisionedConcurrentExecutions": 0,
                "Status": "IN_PROGRESS",
                "LastModified": _iso(),
                "_version": version,
            }
            await self.store.put_doc(TABLE, name, qualifier, doc)
        if previous is not None:
            self.warmer.release(name, previous["_version"])
        self._spawn(self._allocate(name, qualifier, version, wanted))
        return _public(doc)

    def _check_conflicts(
        self, qualifier: str, version: str, others: list[tuple[str, dict[str, Any]]]
    ) -> None:
        for key, doc in others:
            if doc["_version"] != version:
                continue
            if not is_number(qualifier) and is_number(key):
                raise ResourceConflictException(
                    "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned "
                    "version"
                )
            if is_number(qualifier) and not is_number(key):
                raise ResourceConflictException("Version is pointed by a Provisioned Concurrency alias")

    async def _check_limits(self, name: str, total: int) -> None:
        record = await self.functions.load_version(name, "$LATEST")
        if record.reserved_concurrency is not None:
            if total > record.reserved_concurrency:
                raise InvalidParameterValueException(
                    "Requested Provisioned Concurrency should not be greater than the "
                    "reservedConcurrentExecution for function"
                )
            return
        limits = self.functions.limits
        unreserved = limits.concurrent_executions - await self.functions.reserved_total()
        if total > unreserved:
            raise InvalidParameterValueException(
                f"Specified ConcurrentExecutions for function is greater than account's unreserved "
                f"concurrency [{unreserved}]."
            )
        if unreserved - total < limits.min_unreserved:
            raise InvalidParameterValueException(
                "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
                f"below its minimum value of [{limits.min_unreserved}]."
            )

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _allocate(self, name: str, qualifier: str, version: str, wanted: int) -> None:
        try:
            started = await self.warmer.provision(name, version, wanted)
            self._warm.setdefault(name, set()).add(version)
            reason = None if started == wanted else "FUNCTION_ERROR_INIT_FAILURE"
        except Exception as exc:  # the config must not stay IN_PROGRESS forever
            log.exception("provisioning failed", extra={"function": name, "qualifier": qualifier})
            started, reason = 0, f"Provisioning failed: {exc}"
        async with self.functions.lock(name):
            doc = await self.store.get_doc(TABLE, name, qualifier)
            if (
                doc is None
                or doc["_version"] != version
                or doc["RequestedProvisionedConcurrentExecutions"] != wanted
            ):
                return  # deleted or replaced meanwhile: that change released or re-provisions
            doc.update(
                AvailableProvisionedConcurrentExecutions=started,
                AllocatedProvisionedConcurrentExecutions=started,
                Status="READY" if reason is None else "FAILED",
                LastModified=_iso(),
            )
            if reason is not None:
                doc["StatusReason"] = reason
            await self.store.put_doc(TABLE, name, qualifier, doc)

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, qualifier, _ = await self._target(params, NOT_PUBLISHED)
        doc = await self.store.get_doc(TABLE, name, qualifier)
        if doc is None:
            raise ProvisionedConcurrencyConfigNotFoundException(NOT_FOUND)
        return _public(doc)

    async def delete(self, params: Mapping[str, Any]) -> None:
        name, qualifier, _ = await self._target(params, NOT_PUBLISHED)
        async with self.functions.lock(name):
            doc = await self.store.get_doc(TABLE, name, qualifier)
            await self.store.delete_doc(TABLE, name, qualifier)
        if doc is not None:
            self.warmer.release(name, doc["_version"])

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        await self.functions.load_version(ref.name, "$LATEST", ref.qualifier)
        items = [
            {"FunctionArn": self.arns.function(ref.name, key), **_public(doc)}
            for _, key, doc in await self.store.list_docs(TABLE, ref.name)
        ]
        start = 0
        if params.get("Marker"):
            start = next(
                (i + 1 for i, d in enumerate(items) if d["FunctionArn"] == params["Marker"]), len(items)
            )
        limit = params.get("MaxItems") or DEFAULT_PAGE
        result: dict[str, Any] = {"ProvisionedConcurrencyConfigs": items[start : start + limit]}
        if start + limit < len(items):
            result["NextMarker"] = items[start + limit - 1]["FunctionArn"]
        return result

    async def recover(self) -> None:
        """At start-up, provision again what the configs ask for (environments do not survive a restart)."""
        for name, qualifier, doc in await self.store.list_docs(TABLE):
            doc.update(Status="IN_PROGRESS", AvailableProvisionedConcurrentExecutions=0)
            doc["AllocatedProvisionedConcurrentExecutions"] = 0
            doc.pop("StatusReason", None)
            await self.store.put_doc(TABLE, name, qualifier, doc)
            wanted = doc["RequestedProvisionedConcurrentExecutions"]
            self._spawn(self._allocate(name, qualifier, doc["_version"], wanted))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _iso() -> str:
    """LastModified as these configs render it: ISO 8601 with a UTC offset."""
    return cfg.timestamp()
