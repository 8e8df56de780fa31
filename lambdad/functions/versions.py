"""Published versions: immutable snapshots of a function's code and configuration.

A version is a row of the functions table next to ``$LATEST``, with its own number (never reused,
allocated by the store). Publishing when nothing changed since the last version returns that version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdad.functions import configuration as cfg
from lambdad.http.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
)
from lambdad.store.base import FunctionRecord

if TYPE_CHECKING:
    from lambdad.functions.service import FunctionService

#: Fields that never make two versions different. LastModified does: every update of $LATEST sets
#: it, so a version copied from $LATEST and $LATEST itself share it until the next update.
_VOLATILE = ("FunctionArn", "Version", "RevisionId", "Description")
#: Fields ListVersionsByFunction leaves out, as AWS does.
_NOT_LISTED = ("State", "StateReason", "StateReasonCode", "LastUpdateStatus", "RuntimeVersionConfig")
_NUMBER = re.compile(r"^[0-9]+$")
REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def is_number(qualifier: str) -> bool:
    return bool(_NUMBER.match(qualifier))


def _essence(record: FunctionRecord) -> tuple[str, dict[str, Any]]:
    config = {
        k: v
        for k, v in record.config.items()
        if k not in _VOLATILE and not k.startswith(("State", "LastUpdateStatus"))
    }
    return record.code_sha, config


async def publish(
    service: FunctionService, name: str, params: Mapping[str, Any], *, with_update: bool = False
) -> dict[str, Any]:
    """PublishVersion on the function ``name`` (the caller holds the function's lock).

    ``with_update``: publishing as part of CreateFunction / UpdateFunctionCode (``Publish=True``),
    which snapshots the update still in progress; the version turns Active with it.
    """
    latest = await service.load_version(name, "$LATEST")
    if params.get("CodeSha256") and params["CodeSha256"] != latest.config["CodeSha256"]:
        raise InvalidParameterValueException(
            f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 in $LATEST "
            f"({latest.config['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST."
        )
    if params.get("RevisionId") and params["RevisionId"] != latest.config["RevisionId"]:
        raise PreconditionFailedException(REVISION_MISMATCH)
    if latest.config.get("LastUpdateStatus") == "InProgress" and not with_update:
        raise ResourceConflictException(
            "The operation cannot be performed at this time. An update is in progress for resource: "
            f"{latest.config['FunctionArn']}"
        )
    versions = await service.store.list_versions(name)
    published = [v for v in versions if v.version != "$LATEST"]
    if published and _essence(published[-1]) == _essence(latest):
        return published[-1].config
    number = await service.store.next_version(name)
    config = {k: v for k, v in latest.config.items() if not k.startswith("LastUpdateStatus")}
    config.update(
        FunctionArn=service.arns.function(name, number),
        Version=number,
        RevisionId=cfg.new_revision(),
        Description=params.get("Description") or latest.config.get("Description", ""),
    )
    if config.get("State") == "Active" and not with_update:
        config["LastUpdateStatus"] = "Successful"
    else:  # its code is still being prepared: Pending until then, as AWS shows it
        config.update(
            State="Pending", StateReason="The function is being created.", StateReasonCode="Creating"
        )
    await service.store.create_function(FunctionRecord(name, number, config, latest.code_sha))
    latest.config["RevisionId"] = cfg.new_revision()
    await service.store.put_function(latest)
    return config


def listed(record: FunctionRecord, arn: str) -> dict[str, Any]:
    """A version as ListVersionsByFunction renders it."""
    config = {k: v for k, v in record.config.items() if not k.startswith(_NOT_LISTED)}
    config["FunctionArn"] = arn
    return config


async def list_versions(service: FunctionService, params: Mapping[str, Any]) -> dict[str, Any]:
    ref = service.arns.parse_function(params["FunctionName"])
    await service.load_version(ref.name, "$LATEST")
    versions = await service.store.list_versions(ref.name)
    start = 0
    if params.get("Marker"):
        start = next((i + 1 for i, v in enumerate(versions) if v.version == params["Marker"]), len(versions))
    limit = params.get("MaxItems") or 50
    page = versions[start : start + limit]
    result: dict[str, Any] = {"Versions": [listed(v, service.arns.function(v.name, v.version)) for v in page]}
    if start + limit < len(versions):
        result["NextMarker"] = page[-1].version
    return result


async def delete_version(service: FunctionService, name: str, version: str) -> list[str]:
    """Delete one published version unless an alias points to it; returns code hashes now unused."""
    await service.load_version(name, version)
    referencing = [
        key
        for _, key, alias in await service.store.list_docs("aliases", name)
        if alias["FunctionVersion"] == version
        or version in (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})
    ]
    if referencing:
        raise ResourceConflictException(
            f"Unable to delete version because the following aliases reference it: {referencing}"
        )
    await service.store.delete_doc("provisioned", name, version)
    return await service.store.delete_version(name, version)
