"""Function URL configurations: Create/Get/Update/Delete/ListFunctionUrlConfigs.

A URL is ``http://<url-id>.lambda-url.<region>.localhost:<port>/``, answered on lambdad's own port
and routed by the Host header (see ``url_http``). The id is random, 32 lowercase letters and digits
as AWS's are, and stays the same for the life of the config.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lambdad.http.errors import ResourceConflictException, ResourceNotFoundException
from lambdad.store.base import ConflictError

if TYPE_CHECKING:
    from lambdad.functions.service import FunctionService

TABLE = "url_configs"
NOT_FOUND = "The resource you requested does not exist."
_ALPHABET = string.ascii_lowercase + string.digits


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UrlService:
    def __init__(self, functions: FunctionService) -> None:
        self.functions = functions
        self.store = functions.store
        self.arns = functions.arns
        parts = urlsplit(functions.endpoint)
        self._port = parts.port or 80
        #: url id -> (function name, qualifier or ""), loaded on first use.
        self._ids: dict[str, tuple[str, str]] | None = None

    def url(self, url_id: str) -> str:
        return f"http://{url_id}.lambda-url.{self.arns.region}.localhost:{self._port}/"

    async def _function(self, params: Mapping[str, Any], missing: str) -> tuple[str, str]:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        if await self.store.get_function(ref.name) is None:
            raise ResourceNotFoundException(missing)
        if ref.qualifier and await self.store.get_doc("aliases", ref.name, ref.qualifier) is None:
            raise ResourceNotFoundException(missing)
        return ref.name, ref.qualifier or ""

    async def lookup(self, url_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """(function, qualifier, config) of a URL id, or None."""
        if self._ids is None:
            rows = await self.store.list_docs(TABLE)
            self._ids = {doc["UrlId"]: (scope, key) for scope, key, doc in rows}
        found = self._ids.get(url_id)
        if found is None:
            return None
        doc = await self.store.get_doc(TABLE, *found)
        return None if doc is None else (found[0], found[1], doc)

    def _forget_ids(self) -> None:
        self._ids = None

    @staticmethod
    def render(doc: Mapping[str, Any], *fields: str) -> dict[str, Any]:
        keys = ("FunctionUrl", "FunctionArn", "AuthType", "Cors", "CreationTime", *fields)
        return {k: doc[k] for k in keys if k in doc}

    async def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, qualifier = await self._function(params, "Function does not exist")
        url_id = "".join(secrets.choice(_ALPHABET) for _ in range(32))
        now = _now()
        doc: dict[str, Any] = {
            "UrlId": url_id,
            "FunctionUrl": self.url(url_id),
            "FunctionArn": self.arns.function(name, qualifier or None),
            "AuthType": params["AuthType"],
            "CreationTime": now,
            "LastModifiedTime": now,
            "InvokeMode": params.get("InvokeMode") or "BUFFERED",
        }
        if params.get("Cors"):
            doc["Cors"] = params["Cors"]
        try:
            await self.store.create_doc(TABLE, name, qualifier, doc)
        except ConflictError:
            raise ResourceConflictException(
                f"Failed to create function url config for [functionArn = {doc['FunctionArn']}]. "
                "Error message:  FunctionUrlConfig exists for this Lambda function"
            ) from None
        self._forget_ids()
        return self.render(doc, *(("InvokeMode",) if params.get("InvokeMode") else ()))

    async def _stored(self, params: Mapping[str, Any], missing: str) -> tuple[str, str, dict[str, Any]]:
        name, qualifier = await self._function(params, missing)
        doc = await self.store.get_doc(TABLE, name, qualifier)
        if doc is None:
            raise ResourceNotFoundException(NOT_FOUND)
        return name, qualifier, doc

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        _, _, doc = await self._stored(params, NOT_FOUND)
        return self.render(doc, "InvokeMode", "LastModifiedTime")

    async def update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, qualifier, doc = await self._stored(params, "Function does not exist")
        for key in ("AuthType", "Cors", "InvokeMode"):
            if params.get(key) is not None:
                doc[key] = params[key]
        doc["LastModifiedTime"] = _now()
        await self.store.put_doc(TABLE, name, qualifier, doc)
        return self.render(doc, "LastModifiedTime", *(("InvokeMode",) if params.get("InvokeMode") else ()))

    async def delete(self, params: Mapping[str, Any]) -> None:
        name, qualifier, _ = await self._stored(params, NOT_FOUND)
        await self.store.delete_doc(TABLE, name, qualifier)
        self._forget_ids()

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, _ = await self._function({"FunctionName": params["FunctionName"]}, "Function does not exist")
        docs = [
            self.render(d, "InvokeMode", "LastModifiedTime")
            for _, _, d in await self.store.list_docs(TABLE, name)
        ]
        start = int(params.get("Marker") or 0)
        limit = params.get("MaxItems") or 50
        result: dict[str, Any] = {"FunctionUrlConfigs": docs[start : start + limit]}
        if start + limit < len(docs):
            result["NextMarker"] = str(start + limit)
        return result
