"""Layers: published, immutable zips that functions list and find merged under /opt.

A layer version is a document of the ``layer_versions`` table keyed by (layer name, version number),
shaped as GetLayerVersion renders it, plus private fields (``_``-prefixed): the blob's hex hash, the
unzipped size and the version's permission policy. DeleteLayerVersion leaves a tombstone
(``_deleted``): as on AWS, functions that reference a deleted version keep running with it, and its
number is never handed out again.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

from lambdad.functions import configuration as cfg
from lambdad.functions.arns import Arns
from lambdad.functions.codezip import MAX_UNZIPPED_BYTES, inspect_zip
from lambdad.http.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdad.store.base import Store
from lambdad.store.blobs import BlobStore

TABLE = "layer_versions"
MAX_LAYERS = 5
DEFAULT_PAGE = 50
NOT_FOUND = "The resource you requested does not exist."
POLICY_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetLayerPolicy API to retrieve the latest Revision Id"
)
_VERSION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9-_]+):(?P<version>[0-9]+)$"
)
_LAYER_ARN = re.compile(r"^arn:[a-zA-Z0-9-]+:lambda:[a-z0-9-]+:\d{12}:layer:(?P<name>[a-zA-Z0-9-_]+)$")
#: Fields of a version in ListLayerVersions / ListLayers (no LayerArn, no Content).
_LISTED = (
    "LayerVersionArn",
    "Version",
    "Description",
    "CreatedDate",
    "CompatibleRuntimes",
    "LicenseInfo",
    "CompatibleArchitectures",
)


def layer_name(name_or_arn: str) -> str:
    found = _LAYER_ARN.match(name_or_arn)
    return found.group("name") if found else name_or_arn


def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _matches(doc: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    runtime, arch = params.get("CompatibleRuntime"), params.get("CompatibleArchitecture")
    if runtime and runtime not in doc.get("CompatibleRuntimes", []):
        return False
    return not arch or arch in doc.get("CompatibleArchitectures", [])


def _check_number(number: int) -> None:
    if number < 1:
        raise InvalidParameterValueException("Layer Version Cannot be less than 1")


def _page(
    items: list[dict[str, Any]], params: Mapping[str, Any], key: str
) -> tuple[list[dict[str, Any]], str | None]:
    start = 0
    if params.get("Marker"):
        start = next(
            (i + 1 for i, item in enumerate(items) if str(item[key]) == params["Marker"]), len(items)
        )
    limit = params.get("MaxItems") or DEFAULT_PAGE
    page = items[start : start + limit]
    return page, (str(page[-1][key]) if start + limit < len(items) else None)


class LayerService:
    """The layer operations of the Lambda API, and the layer lookups functions need."""

    def __init__(self, store: Store, blobs: BlobStore, arns: Arns, code_url: Any) -> None:
        self.store = store
        self.blobs = blobs
        self.arns = arns
        #: FunctionService.code_url: signed download URLs for Content.Location.
        self._code_url = code_url
        self._locks: dict[str, asyncio.Lock] = {}

    def layer_arn(self, name: str, version: int | None = None) -> str:
        arn = f"arn:aws:lambda:{self.arns.region}:{self.arns.account_id}:layer:{name}"
        return f"{arn}:{version}" if version is not None else arn

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _versions(self, name: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        """The versions of one layer, newest first (tombstones only when ``deleted``)."""
        docs = [doc for _, _, doc in await self.store.list_docs(TABLE, name)]
        docs = [d for d in docs if deleted or not d.get("_deleted")]
        return sorted(docs, key=lambda d: -int(d["Version"]))

    async def _load(self, name: str, number: int) -> dict[str, Any] | None:
        doc = await self.store.get_doc(TABLE, name, str(number))
        return None if doc is None or doc.get("_deleted") else doc

    def _render(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        content = {
            "Location": self._code_url(doc["_sha"]),
            "CodeSha256": doc["_sha256"],
            "CodeSize": doc["_size"],
        }
        return {"Content": content, **_public(doc)}

    # -- versions ----------------------------------------------------------------------------------

    async def publish(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = layer_name(params["LayerName"])
        content = params.get("Content") or {}
        if content.get("S3Bucket") or content.get("S3Key"):
            raise InvalidParameterValueException(
                "Content.S3Bucket/S3Key is not supported by lambdad yet: upload the layer zip with "
                "Content.ZipFile (aws lambda publish-layer-version --zip-file fileb://layer.zip)."
            )
        data = content.get("ZipFile")
        if not data:
            raise InvalidParameterValueException("Please provide a source for layer content.")
        summary = await asyncio.to_thread(inspect_zip, data)
        sha_hex = await asyncio.to_thread(self.blobs.put, data)
        async with self._lock(name):
            existing = await self._versions(name, deleted=True)
            number = int(existing[0]["Version"]) + 1 if existing else 1
            doc: dict[str, Any] = {
                "LayerArn": self.layer_arn(name),
                "LayerVersionArn": self.layer_arn(name, number),
                "Description": params.get("Description") or "",
                "CreatedDate": cfg.timestamp(),
                "Version": number,
            }
            for key in ("CompatibleArchitectures", "CompatibleRuntimes", "LicenseInfo"):
                if params.get(key) is not None:
                    doc[key] = params[key]
            doc.update(_sha=sha_hex, _sha256=summary.sha256_b64, _size=summary.size)
            doc["_unzipped"] = summary.unzipped_size
            await self.store.create_doc(TABLE, name, str(number), doc)
        return self._render(doc)

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        number = int(params["VersionNumber"])
        _check_number(number)
        doc = await self._load(layer_name(params["LayerName"]), number)
        if doc is None:
            raise ResourceNotFoundException(NOT_FOUND)
        return self._render(doc)

    async def get_by_arn(self, params: Mapping[str, Any]) -> dict[str, Any]:
        found = _VERSION_ARN.match(params["Arn"])
        if found is None:
            raise ResourceNotFoundException(NOT_FOUND)
        return await self.get({"LayerName": found.group("name"), "VersionNumber": found.group("version")})

    async def list_versions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        docs = await self._versions(layer_name(params["LayerName"]))
        items = [{k: d[k] for k in _LISTED if k in d} for d in docs if _matches(d, params)]
        page, marker = _page(items, params, "Version")
        result: dict[str, Any] = {"LayerVersions": page}
        if marker:
            result["NextMarker"] = marker
        return result

    async def list_layers(self, params: Mapping[str, Any]) -> dict[str, Any]:
        latest: dict[str, dict[str, Any]] = {}
        for name, _, doc in await self.store.list_docs(TABLE):
            if doc.get("_deleted") or not _matches(doc, params):
                continue
            if name not in latest or int(doc["Version"]) > int(latest[name]["Version"]):
                latest[name] = doc
        items = [
            {
                "LayerName": name,
                "LayerArn": doc["LayerArn"],
                "LatestMatchingVersion": {k: doc[k] for k in _LISTED if k in doc},
            }
            for name, doc in sorted(latest.items())
        ]
        page, marker = _page(items, params, "LayerName")
        result: dict[str, Any] = {"Layers": page}
        if marker:
            result["NextMarker"] = marker
        return result

    async def delete(self, params: Mapping[str, Any]) -> list[str]:
        """Tombstone one version (idempotent); returns the blob hashes nothing needs any more."""
        number = int(params["VersionNumber"])
        _check_number(number)
        name = layer_name(params["LayerName"])
        async with self._lock(name):
            doc = await self._load(name, number)
            if doc is None:
                return []
            await self.store.put_doc(TABLE, name, str(number), {**doc, "_deleted": True, "_policy": None})
        return await self._unused(doc)

    async def _unused(self, doc: Mapping[str, Any]) -> list[str]:
        """The deleted version's blob, unless a function or another layer version still uses it."""
        sha, arn = doc["_sha"], doc["LayerVersionArn"]
        others = [d for _, _, d in await self.store.list_docs(TABLE) if d["LayerVersionArn"] != arn]
        if any(d["_sha"] == sha for d in others) or await self.store.code_in_use(sha):
            return []
        after: str | None = None
        while page := await self.store.list_functions(after, 500):
            for latest in page:
                for record in await self.store.list_versions(latest.name):
                    if any(layer["Arn"] == arn for layer in record.config.get("Layers", [])):
                        return []
            after = page[-1].name
        return [sha]

    # -- permissions -------------------------------------------------------------------------------

    async def _for_policy(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        number = int(params["VersionNumber"])
        _check_number(number)
        name = layer_name(params["LayerName"])
        doc = await self._load(name, number)
        if doc is None:
            raise ResourceNotFoundException(f"Layer version {self.layer_arn(name, number)} does not exist.")
        return name, doc

    async def add_permission(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, _ = await self._for_policy(params)
        async with self._lock(name):
            name, doc = await self._for_policy(params)
            policy = doc.get("_policy") or {"Statement": [], "RevisionId": ""}
            _check_revision(policy, params.get("RevisionId"))
            if any(s["Sid"] == params["StatementId"] for s in policy["Statement"]):
                raise ResourceConflictException(
                    f"The statement id ({params['StatementId']}) provided already exists. Please provide a new "
                    "statement id, or remove the existing statement."
                )
            stmt = _statement(params, doc["LayerVersionArn"])
            policy = {"Statement": [*policy["Statement"], stmt], "RevisionId": cfg.new_revision()}
            await self.store.put_doc(TABLE, name, str(doc["Version"]), {**doc, "_policy": policy})
        return {"Statement": json.dumps(stmt), "RevisionId": policy["RevisionId"]}

    async def remove_permission(self, params: Mapping[str, Any]) -> None:
        name, _ = await self._for_policy(params)
        async with self._lock(name):
            name, doc = await self._for_policy(params)
            policy = doc.get("_policy") or {"Statement": [], "RevisionId": ""}
            _check_revision(policy, params.get("RevisionId"))
            kept = [s for s in policy["Statement"] if s["Sid"] != params["StatementId"]]
            if len(kept) == len(policy["Statement"]):
                raise ResourceNotFoundException(
                    f"Statement {params['StatementId']} is not found in resource policy."
                )
            new = {"Statement": kept, "RevisionId": cfg.new_revision()} if kept else None
            await self.store.put_doc(TABLE, name, str(doc["Version"]), {**doc, "_policy": new})

    async def get_policy(self, params: Mapping[str, Any]) -> dict[str, Any]:
        _, doc = await self._for_policy(params)
        policy = doc.get("_policy")
        if not policy:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        rendered = {"Version": "2012-10-17", "Id": "default", "Statement": policy["Statement"]}
        return {"Policy": json.dumps(rendered), "RevisionId": policy["RevisionId"]}

    # -- what functions need ---------------------------------------------------------------------

    async def for_function(self, arns: list[str], code_unzipped: int) -> list[dict[str, Any]]:
        """Check a function's Layers parameter; returns its ``Layers`` configuration ([{Arn, CodeSize}])."""
        if len(arns) > MAX_LAYERS:
            raise InvalidParameterValueException(f"Cannot reference more than {MAX_LAYERS} layers.")
        seen: dict[str, str] = {}
        docs = []
        for arn in arns:
            found = _VERSION_ARN.match(arn)
            if found is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            if found.group("region") != self.arns.region:
                raise InvalidParameterValueException(
                    "Layers are not in the same region as the function. "
                    f"Layers are expected to be in region {self.arns.region}."
                )
            layer = arn.rsplit(":", 1)[0]
            if layer in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced in the same "
                    f"function. {seen[layer]} and {arn} are versions of the same layer."
                )
            seen[layer] = arn
            doc = None
            if found.group("account") == self.arns.account_id:
                doc = await self._load(found.group("name"), int(found.group("version")))
            if doc is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            docs.append(doc)
        total = code_unzipped + sum(int(d["_unzipped"]) for d in docs)
        if total > MAX_UNZIPPED_BYTES:
            raise InvalidParameterValueException(
                "Function code combined with layers exceeds the maximum allowed size of "
                f"{MAX_UNZIPPED_BYTES} bytes. The actual size is {total} bytes."
            )
        return [{"Arn": d["LayerVersionArn"], "CodeSize": d["_size"]} for d in docs]

    async def blob_hashes(self, layers: list[Mapping[str, Any]]) -> list[str]:
        """The blob hash of each layer a function lists, in order (deleted versions included)."""
        hashes = []
        for layer in layers:
            found = _VERSION_ARN.match(layer["Arn"])
            assert found is not None
            doc = await self.store.get_doc(TABLE, found.group("name"), found.group("version"))
            if doc is None:
                raise ResourceNotFoundException(f"Layer version {layer['Arn']} does not exist.")
            hashes.append(str(doc["_sha"]))
        return hashes


def _check_revision(policy: Mapping[str, Any], revision_id: str | None) -> None:
    if revision_id and revision_id != policy["RevisionId"]:
        raise PreconditionFailedException(POLICY_REVISION_MISMATCH)


def _statement(params: Mapping[str, Any], resource: str) -> dict[str, Any]:
    principal: Any = params["Principal"]
    if re.match(r"^\d{12}$", principal):
        principal = {"AWS": f"arn:aws:iam::{principal}:root"}
    elif principal != "*":
        principal = {"AWS": principal}
    stmt: dict[str, Any] = {
        "Sid": params["StatementId"],
        "Effect": "Allow",
        "Principal": principal,
        "Action": params["Action"],
        "Resource": resource,
    }
    if params.get("OrganizationId"):
        stmt["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": params["OrganizationId"]}}
    return stmt
