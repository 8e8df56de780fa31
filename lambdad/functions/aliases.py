"""Aliases: named pointers to a version, optionally splitting traffic with a second version by weight."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdad.functions import configuration as cfg
from lambdad.functions.versions import REVISION_MISMATCH
from lambdad.http.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdad.store.base import ConflictError

if TYPE_CHECKING:
    from lambdad.functions.service import FunctionService

TABLE = "aliases"


class UntypedInvalidParameterValue(InvalidParameterValueException):
    """AWS sends some InvalidParameterValueExceptions without ``"Type"`` in the body."""

    typed_body = False


def pick_version(alias: Mapping[str, Any], draw: float | None = None) -> str:
    """The version one invocation of ``alias`` runs: the additional one with its weight's probability."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    roll = random.random() if draw is None else draw
    for version, weight in weights.items():
        if roll < float(weight):
            return str(version)
    return str(alias["FunctionVersion"])


def _check_weights(weights: Mapping[str, Any]) -> None:
    """Weights within 0.0–1.0, worded as AWS's model validation words a broken map value."""
    for weight in weights.values():
        if weight is None or not 0.0 <= float(weight) <= 1.0:
            rendered = ", ".join(f"{k}={float(v) if v is not None else None}" for k, v in weights.items())
            raise ValidationException(
                f"1 validation error detected: Value '{{{rendered}}}' at 'routingConfig.additionalVersionWeights' "
                "failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less "
                "than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]"
            )


class AliasService:
    def __init__(self, functions: FunctionService) -> None:
        self.functions = functions
        self.store = functions.store
        self.arns = functions.arns

    def _arn(self, name: str, alias: str) -> str:
        return self.arns.function(name, alias)

    async def _check_targets(self, name: str, version: str, routing: Mapping[str, Any] | None) -> None:
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        _check_weights(weights)
        if len(weights) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        # A missing function is reported by the version the alias would point to, as AWS does.
        await self.functions.load_version(name, "$LATEST", version)
        await self.functions.load_version(name, version, version)
        for extra in weights:
            if extra == version:
                raise InvalidParameterValueException(
                    f"Invalid function version {version}. Function version {version} is already included in "
                    "routing configuration."
                )
            await self.functions.load_version(name, extra, extra)
        if weights and version == "$LATEST":
            raise UntypedInvalidParameterValue(
                "$LATEST is not supported for an alias pointing to more than 1 version"
            )

    @staticmethod
    def _routing(routing: Mapping[str, Any] | None) -> dict[str, Any] | None:
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        return {"AdditionalVersionWeights": {k: float(v) for k, v in weights.items()}} if weights else None

    async def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        name, alias = ref.name, params["Name"]
        await self._check_targets(name, params["FunctionVersion"], params.get("RoutingConfig"))
        doc: dict[str, Any] = {
            "AliasArn": self._arn(name, alias),
            "Description": params.get("Description") or "",
            "FunctionVersion": params["FunctionVersion"],
            "Name": alias,
            "RevisionId": cfg.new_revision(),
        }
        routing = self._routing(params.get("RoutingConfig"))
        if routing:
            doc["RoutingConfig"] = routing
        try:
            await self.store.create_doc(TABLE, name, alias, doc)
        except ConflictError:
            raise ResourceConflictException(f"Alias already exists: {self._arn(name, alias)}") from None
        await self.functions.notify(name)
        return doc

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        await self.functions.load_version(ref.name, "$LATEST")
        doc = await self.store.get_doc(TABLE, ref.name, params["Name"])
        if doc is None:
            raise ResourceNotFoundException(f"Cannot find alias arn: {self._arn(ref.name, params['Name'])}")
        return doc

    async def update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        name, alias = ref.name, params["Name"]
        async with self.functions.lock(name):
            await self.functions.load_version(name, "$LATEST")
            doc = await self.store.get_doc(TABLE, name, alias)
            if doc is None:
                raise ResourceNotFoundException(f"Alias not found: {self._arn(name, alias)}")
            if params.get("RevisionId") and params["RevisionId"] != doc["RevisionId"]:
                raise PreconditionFailedException(REVISION_MISMATCH)
            version = params.get("FunctionVersion") or doc["FunctionVersion"]
            routing = params["RoutingConfig"] if "RoutingConfig" in params else doc.get("RoutingConfig")
            await self._check_targets(name, version, routing)
            doc.update(FunctionVersion=version, RevisionId=cfg.new_revision())
            if params.get("Description") is not None:
                doc["Description"] = params["Description"]
            doc.pop("RoutingConfig", None)
            if clean := self._routing(routing):
                doc["RoutingConfig"] = clean
            await self.store.put_doc(TABLE, name, alias, doc)
        await self.functions.notify(name)
        return doc

    async def delete(self, params: Mapping[str, Any]) -> None:
        ref = self.arns.parse_function(params["FunctionName"])
        await self.functions.load_version(ref.name, "$LATEST")
        await self.store.delete_doc(TABLE, ref.name, params["Name"])
        for table in ("policies", "url_configs", "provisioned"):
            await self.store.delete_doc(table, ref.name, params["Name"])
        await self.functions.notify(ref.name)

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"])
        await self.functions.load_version(ref.name, "$LATEST")
        docs = [doc for _, _, doc in await self.store.list_docs(TABLE, ref.name)]
        if params.get("FunctionVersion"):
            docs = [d for d in docs if d["FunctionVersion"] == params["FunctionVersion"]]
        start = 0
        if params.get("Marker"):
            start = next((i + 1 for i, d in enumerate(docs) if d["Name"] == params["Marker"]), len(docs))
        limit = params.get("MaxItems") or 50
        result: dict[str, Any] = {"Aliases": docs[start : start + limit]}
        if start + limit < len(docs):
            result["NextMarker"] = docs[start + limit - 1]["Name"]
        return result
