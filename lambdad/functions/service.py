"""The function lifecycle: create, read, update, delete, tags and reserved concurrency.

Operations take the already-validated input of the API model and return AWS-shaped dicts. Code is
checked completely before anything is written; a new function starts Pending and turns Active once
its code is unpacked into the shared code cache (AWS's waiters see the same sequence).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdad.functions import configuration as cfg
from lambdad.functions import validation, versions
from lambdad.functions.arns import Arns, FunctionRef
from lambdad.functions.codezip import ZipSummary, inspect_zip
from lambdad.functions.layers import LayerService
from lambdad.functions.precompile import precompile
from lambdad.functions.runtimes import check_runtime, installed_runtimes
from lambdad.http.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdad.store.base import ConflictError, FunctionRecord, Store
from lambdad.store.blobs import BlobStore

log = logging.getLogger("lambdad.functions")

ChangeListener = Callable[[str], Awaitable[None]]
CODE_URL_TTL_S = 600
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class AccountLimits:
    concurrent_executions: int
    #: AWS keeps at least this much concurrency unreserved.
    min_unreserved: int = 100


class FunctionService:
    """Control-plane operations on functions, independent of HTTP."""

    def __init__(
        self, store: Store, blobs: BlobStore, arns: Arns, endpoint: str, url_key: bytes, limits: AccountLimits
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.arns = arns
        self.endpoint = endpoint
        self._url_key = url_key
        self.limits = limits
        self._preparing: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.listeners: list[ChangeListener] = []
        self.layers = LayerService(store, blobs, arns, self.code_url)

    def _lock(self, name: str) -> asyncio.Lock:
        """Serializes read-modify-write of one function's record (updates, tags, becoming Active)."""
        return self._locks.setdefault(name, asyncio.Lock())

    def lock(self, name: str) -> asyncio.Lock:
        """The function's lock, for the modules of versions, aliases, policies and URLs."""
        return self._lock(name)

    async def notify(self, name: str) -> None:
        """Tell the listeners (the invoke path's caches) that ``name`` or one of its aliases changed."""
        await self._notify(name)

    async def publish_version(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        async with self._lock(ref.name):
            return await versions.publish(self, ref.name, params)

    # -- lookups -------------------------------------------------------------------------------

    async def resolve(self, identifier: str, qualifier: str | None = None) -> FunctionRecord:
        """Find the function version a FunctionName (+ Qualifier) names, or raise AWS's 404."""
        ref = self.arns.parse_function(identifier, qualifier)
        return await self._load(ref)

    async def _load(self, ref: FunctionRef) -> FunctionRecord:
        """The version a reference names; for an alias, the version it points to under the alias's ARN."""
        qualifier = ref.qualifier
        if qualifier is None or qualifier == "$LATEST" or versions.is_number(qualifier):
            record = await self.load_version(ref.name, qualifier or "$LATEST", qualifier)
        else:
            alias = await self.store.get_doc("aliases", ref.name, qualifier)
            if alias is None:
                await self.load_version(ref.name, "$LATEST")
                raise ResourceNotFoundException(
                    f"Function not found: {self.arns.function(ref.name, qualifier)}"
                )
            record = await self.load_version(ref.name, alias["FunctionVersion"])
        if qualifier is not None:
            record.config["FunctionArn"] = self.arns.function(ref.name, qualifier)
        return record

    async def load_version(self, name: str, version: str, qualifier: str | None = None) -> FunctionRecord:
        """One stored version as it is, or AWS's 404 naming ``qualifier``."""
        record = await self.store.get_function(name, version)
        if record is None:
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(name, qualifier)}")
        return record

    async def ready(self, record: FunctionRecord) -> FunctionRecord:
        """Wait until the function's code is unpacked (for an invoke that arrives while Pending)."""
        task = self._preparing.get(record.name)
        if task is not None:
            await asyncio.shield(task)
            return await self.load_version(record.name, record.version)
        return record

    # -- create / update / delete ----------------------------------------------------------------

    async def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        validation.check_function_name(ref.name)
        if ref.qualifier:
            raise InvalidParameterValueException("Function name cannot contain a version or alias qualifier.")
        runtime = self._check_config(params, creating=True)
        code = self._check_code(params.get("Code") or {})
        validation.check_handler(params.get("Handler"), runtime)
        layers = await self.layers.for_function(list(params.get("Layers") or []), code.unzipped_size)
        if params.get("Tags"):
            validation.check_tags({}, params["Tags"])
        sha_hex = await asyncio.to_thread(self.blobs.put, params["Code"]["ZipFile"])
        config = cfg.new_configuration(
            params, self.arns.function(ref.name), self.arns.region, code.sha256_b64, code.size
        )
        if layers:
            config["Layers"] = layers
        record = FunctionRecord(ref.name, "$LATEST", config, sha_hex, dict(params.get("Tags") or {}))
        try:
            await self.store.create_function(record)
        except ConflictError:
            await self._forget_code(sha_hex)
            raise ResourceConflictException(f"Function already exist: {ref.name}") from None
        self._prepare(record)
        if params.get("Publish"):
            async with self._lock(ref.name):
                published = await versions.publish(self, ref.name, {}, with_update=True)
            # AWS answers with the unqualified configuration, numbered as the version just published
            return {**config, "Version": published["Version"]}
        return config

    def _check_config(self, params: Mapping[str, Any], creating: bool) -> str:
        """Lambda's own checks on configuration fields; returns the runtime family."""
        family = "custom"
        if params.get("Runtime") is not None or creating:
            if params.get("Runtime") is None:
                raise InvalidParameterValueException("The Runtime parameter is required for Zip packages.")
            family = check_runtime(params["Runtime"]).family
        if creating and params.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValueException(
                "PackageType Image is not supported by lambdad yet: package the function as a zip file."
            )
        if creating and params.get("Handler") is None:
            raise InvalidParameterValueException("The Handler parameter is required for Zip packages.")
        validation.check_limits(params)
        validation.check_environment(params.get("Environment"))
        return family

    def _check_code(self, code: Mapping[str, Any]) -> ZipSummary:
        if code.get("S3Bucket") or code.get("S3Key"):
            raise InvalidParameterValueException(
                "Code.S3Bucket/S3Key is not supported by lambdad yet: upload the zip with Code.ZipFile "
                "(aws lambda create-function --zip-file fileb://function.zip)."
            )
        if code.get("ImageUri"):
            raise InvalidParameterValueException(
                "Code.ImageUri is not supported by lambdad yet: use Code.ZipFile."
            )
        data = code.get("ZipFile")
        if not data:
            raise InvalidParameterValueException("Please provide a source for function code.")
        return inspect_zip(data)

    async def update_code(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        async with self._lock(ref.name):
            return await self._update_code(ref, params)

    async def _update_code(self, ref: FunctionRef, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self._load(ref)
        self._check_updatable(record, params.get("RevisionId"))
        code = self._check_code({k: params.get(k) for k in ("ZipFile", "S3Bucket", "S3Key", "ImageUri")})
        if params.get("DryRun"):
            return {**record.config, "CodeSha256": code.sha256_b64, "CodeSize": code.size}
        old_sha = record.code_sha
        record.code_sha = await asyncio.to_thread(self.blobs.put, params["ZipFile"])
        record.config.update(CodeSha256=code.sha256_b64, CodeSize=code.size)
        cfg.mark_in_progress(record.config)
        await self.store.put_function(record)
        if old_sha != record.code_sha:
            await self._forget_code(old_sha)
        self._prepare(record)
        if params.get("Publish"):
            return await versions.publish(self, ref.name, {}, with_update=True)
        return record.config

    async def update_configuration(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        async with self._lock(ref.name):
            return await self._update_configuration(ref, params)

    async def _update_configuration(self, ref: FunctionRef, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self._load(ref)
        self._check_updatable(record, params.get("RevisionId"))
        self._check_config(params, creating=False)
        runtime = params.get("Runtime") or record.config["Runtime"]
        validation.check_handler(params.get("Handler"), check_runtime(runtime).family)
        layers = None
        if params.get("Layers") is not None:
            unzipped = await asyncio.to_thread(self._unzipped_size, record.code_sha)
            layers = await self.layers.for_function(list(params["Layers"]), unzipped)
        record.config = cfg.apply_update(record.config, params, self.arns.region)
        if layers is not None:
            record.config.pop("Layers", None)
            if layers:
                record.config["Layers"] = layers
        await self.store.put_function(record)
        self._prepare(record)
        return record.config

    def _unzipped_size(self, code_sha: str) -> int:
        return inspect_zip(self.blobs.read(code_sha)).unzipped_size

    def _check_updatable(self, record: FunctionRecord, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != record.config["RevisionId"]:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        # Busy while the stored state says so: the preparing task goes on for a moment after it
        # has committed Active/Successful (versions, listeners), and clients act on what they read.
        busy = (
            record.config.get("State") == "Pending" or record.config.get("LastUpdateStatus") == "InProgress"
        )
        if busy and record.name in self._preparing:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for resource: "
                f"{record.config['FunctionArn']}"
            )

    async def delete(self, params: Mapping[str, Any]) -> None:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        if ref.qualifier == "$LATEST":
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if ref.qualifier is not None:
            async with self._lock(ref.name):
                unused = await versions.delete_version(self, ref.name, ref.qualifier)
            for sha in unused:
                await asyncio.to_thread(self.blobs.delete, sha)
            await self._notify(ref.name)
            return
        await self._load(ref)
        task = self._preparing.get(ref.name)
        if task is not None:
            await asyncio.shield(task)
        for sha in await self.store.delete_function(ref.name):
            await asyncio.to_thread(self.blobs.delete, sha)
        await self._notify(ref.name)

    async def _forget_code(self, sha_hex: str) -> None:
        if not await self.store.code_in_use(sha_hex):
            await asyncio.to_thread(self.blobs.delete, sha_hex)

    # -- becoming Active -------------------------------------------------------------------------

    def _prepare(self, record: FunctionRecord) -> None:
        """Unpack the code in the background, then mark the function Active / Successful."""
        name = record.name
        task = asyncio.get_running_loop().create_task(self._finish(name))
        self._preparing[name] = task
        # An update may start the next task before this one ends: forget only this one.
        task.add_done_callback(
            lambda done: self._preparing.pop(name) if self._preparing.get(name) is done else None
        )

    async def _finish(self, name: str) -> None:
        record = await self.store.get_function(name)
        if record is None:
            return
        failure: Exception | None = None
        try:
            tree = await asyncio.to_thread(self.blobs.unpacked, record.code_sha)
            runtime = installed_runtimes().get(record.config.get("Runtime", ""))
            if runtime is not None and runtime.family == "python" and runtime.interpreter is not None:
                await precompile(tree, runtime.interpreter)
        except Exception as exc:  # an unpack failure must not leave the function Pending forever
            log.exception("unpacking code failed", extra={"function": name})
            failure = exc
        async with self._lock(name):
            record = await self.store.get_function(name)
            if record is None:
                return
            if failure is None:
                record.config = cfg.mark_ready(record.config)
            else:
                record.config.update(State="Failed", StateReason=f"Unpacking the code failed: {failure}")
                record.config["StateReasonCode"] = "InternalError"
            await self.store.put_function(record)
            await self._finish_versions(name, record.code_sha, failure is None)
        await self._notify(name)

    async def _finish_versions(self, name: str, code_sha: str, ok: bool) -> None:
        """Versions published while their code was being unpacked become Active (or Failed) with it."""
        for version in await self.store.list_versions(name):
            if version.version == "$LATEST" or version.config.get("State") != "Pending":
                continue
            if version.code_sha != code_sha:
                await asyncio.to_thread(self.blobs.unpacked, version.code_sha)
            revision = version.config["RevisionId"]
            if ok:
                version.config = {**cfg.mark_ready(version.config), "RevisionId": revision}
            else:
                version.config.update(State="Failed", StateReasonCode="InternalError")
            await self.store.put_function(version)

    async def _notify(self, name: str) -> None:
        for listener in self.listeners:
            await listener(name)

    async def recover(self) -> None:
        """At start-up, finish whatever was Pending or InProgress when the server stopped."""
        after: str | None = None
        while page := await self.store.list_functions(after, 500):
            for record in page:
                pending = record.config.get("State") == "Pending"
                if pending or record.config.get("LastUpdateStatus") == "InProgress":
                    self._prepare(record)
            after = page[-1].name

    async def wait_prepared(self) -> None:
        while self._preparing:
            await asyncio.gather(*self._preparing.values(), return_exceptions=True)

    # -- reads -----------------------------------------------------------------------------------

    async def get_function(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self.resolve(params["FunctionName"], params.get("Qualifier"))
        result: dict[str, Any] = {
            "Configuration": record.config,
            "Code": {"RepositoryType": "S3", "Location": self.code_url(record.code_sha)},
        }
        if record.tags:
            result["Tags"] = record.tags
        if record.reserved_concurrency is not None:
            result["Concurrency"] = {"ReservedConcurrentExecutions": record.reserved_concurrency}
        return result

    async def get_configuration(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self.resolve(params["FunctionName"], params.get("Qualifier"))
        return record.config

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        limit = params.get("MaxItems") or DEFAULT_PAGE
        if params.get("FunctionVersion") == "ALL":
            return await self._list_all_versions(params.get("Marker"), limit)
        page = await self.store.list_functions(params.get("Marker"), limit + 1)
        result: dict[str, Any] = {"Functions": [_listed(r.config) for r in page[:limit]]}
        if len(page) > limit:
            result["NextMarker"] = page[limit - 1].name
        return result

    async def _list_all_versions(self, marker: str | None, limit: int) -> dict[str, Any]:
        """ListFunctions with FunctionVersion=ALL: every version of every function, by name then
        version; the marker is the qualified FunctionArn of the last version of the previous page."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        if marker:
            ref = self.arns.parse_function(marker)
            versions_ = await self.store.list_versions(ref.name)
            last = 0 if ref.qualifier in (None, "$LATEST") else int(ref.qualifier or 0)
            rest = [v for v in versions_ if v.version != "$LATEST" and int(v.version) > last]
            found += [self._listed_version(v) for v in rest]
            after = ref.name
        while len(found) <= limit and (page := await self.store.list_functions(after, 100)):
            for latest in page:
                found += [self._listed_version(v) for v in await self.store.list_versions(latest.name)]
            after = page[-1].name
        result: dict[str, Any] = {"Functions": found[:limit]}
        if len(found) > limit:
            result["NextMarker"] = found[limit - 1]["FunctionArn"]
        return result

    def _listed_version(self, record: FunctionRecord) -> dict[str, Any]:
        return {**_listed(record.config), "FunctionArn": self.arns.function(record.name, record.version)}

    async def account_settings(self, concurrency_in_use: int = 0) -> dict[str, Any]:
        count, total = await self.store.function_stats()
        reserved = await self._reserved_total(exclude=None)
        return {
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800,
                "CodeSizeUnzipped": 262_144_000,
                "CodeSizeZipped": 52_428_800,
                "ConcurrentExecutions": self.limits.concurrent_executions,
                "UnreservedConcurrentExecutions": self.limits.concurrent_executions - reserved,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": count},
        }

    # -- code download URLs ------------------------------------------------------------------------

    def code_url(self, sha_hex: str, now: float | None = None) -> str:
        """A time-limited URL, like S3's presigned ones, that downloads the zip without SigV4."""
        expires = int((now or time.time()) + CODE_URL_TTL_S)
        return f"{self.endpoint}/_lambdad/code/{sha_hex}?expires={expires}&signature={self._sign(sha_hex, expires)}"

    def _sign(self, sha_hex: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{sha_hex}:{expires}".encode(), hashlib.sha256).hexdigest()

    def check_code_url(self, sha_hex: str, expires: str, signature: str) -> bool:
        try:
            deadline = int(expires)
        except ValueError:
            return False
        valid = hmac.compare_digest(self._sign(sha_hex, deadline), signature)
        return valid and deadline >= time.time() and self.blobs.exists(sha_hex)

    # -- tags --------------------------------------------------------------------------------------

    async def _tag_target(self, resource_arn: str) -> FunctionRecord:
        ref = self.arns.parse_function(resource_arn)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a function ARN."
            )
        return await self._load(ref)

    async def tag(self, params: Mapping[str, Any]) -> None:
        record = await self._tag_target(params["Resource"])
        async with self._lock(record.name):
            record = await self._tag_target(params["Resource"])
            validation.check_tags(record.tags, params.get("Tags") or {})
            record.tags.update(params["Tags"])
            record.config["RevisionId"] = cfg.new_revision()  # AWS revises the function on tagging
            await self.store.put_function(record)

    async def untag(self, params: Mapping[str, Any]) -> None:
        record = await self._tag_target(params["Resource"])
        async with self._lock(record.name):
            record = await self._tag_target(params["Resource"])
            for key in params.get("TagKeys") or []:
                record.tags.pop(key, None)
            record.config["RevisionId"] = cfg.new_revision()
            await self.store.put_function(record)

    async def list_tags(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self._tag_target(params["Resource"])
        return {"Tags": record.tags}

    # -- reserved concurrency ----------------------------------------------------------------------

    async def reserved_total(self) -> int:
        """Reserved concurrency over all functions (for provisioned concurrency's account check)."""
        return await self._reserved_total(exclude=None)

    async def _reserved_total(self, exclude: str | None) -> int:
        total, after = 0, None
        while page := await self.store.list_functions(after, 500):
            total += sum(r.reserved_concurrency or 0 for r in page if r.name != exclude)
            after = page[-1].name
        return total

    async def put_concurrency(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        wanted = int(params["ReservedConcurrentExecutions"])
        async with self._lock(ref.name):
            record = await self._load(ref)
            others = await self._reserved_total(exclude=record.name)
            if self.limits.concurrent_executions - others - wanted < self.limits.min_unreserved:
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{self.limits.min_unreserved}]."
                )
            record.reserved_concurrency = wanted
            await self.store.put_function(record)
        await self._notify(record.name)
        return {"ReservedConcurrentExecutions": wanted}

    async def get_concurrency(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = await self.resolve(params["FunctionName"])
        if record.reserved_concurrency is None:
            return {}
        return {"ReservedConcurrentExecutions": record.reserved_concurrency}

    async def delete_concurrency(self, params: Mapping[str, Any]) -> None:
        ref = self.arns.parse_function(params["FunctionName"])
        async with self._lock(ref.name):
            record = await self._load(ref)
            record.reserved_concurrency = None
            await self.store.put_function(record)
        await self._notify(record.name)


# ListFunctions leaves out the state fields and the runtime version, as AWS does.
_NOT_LISTED = frozenset(
    {
        "State",
        "StateReason",
        "StateReasonCode",
        "LastUpdateStatus",
        "LastUpdateStatusReason",
        "LastUpdateStatusReasonCode",
        "RuntimeVersionConfig",
    }
)


def _listed(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _NOT_LISTED}
