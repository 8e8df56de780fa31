"""EventInvokeConfig: how asynchronous invocations of a function (version, alias) are retried and where
their results go. Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s), with AWS's checks and errors.

Configs live in ``async.db`` (``lambdad.invoke.async_queue.AsyncStore``), keyed by function name and
qualifier ($LATEST when none), and are deleted with their function.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lambdad.events.queues.store import QueueStore
from lambdad.functions.arns import FunctionRef
from lambdad.functions.service import FunctionService
from lambdad.http.app import Handler, bind
from lambdad.http.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdad.invoke.async_queue import AsyncStore
from lambdad.invoke.destinations import service_of

DEFAULT_PAGE = 50
SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")
#: Destination services AWS accepts that lambdad cannot deliver to yet.
UNSUPPORTED = ("sns", "events", "s3")


class EventInvokeConfigs:
    """The operations, independent of HTTP."""

    def __init__(self, functions: FunctionService, queues: QueueStore, store: AsyncStore) -> None:
        self.functions = functions
        self.arns = functions.arns
        self.queues = queues
        self.store = store
        functions.listeners.append(self._function_changed)

    async def _function_changed(self, name: str) -> None:
        if await self.functions.store.get_function(name) is None:
            await self.store.delete_config(name, None)

    async def get_config(self, name: str, qualifier: str | None) -> dict[str, Any]:
        """The config the async dispatcher applies (empty when none was put)."""
        return await self.store.get_config(name, qualifier or "$LATEST") or {}

    # -- lookups -----------------------------------------------------------------------------------

    def _ref(self, params: Mapping[str, Any]) -> FunctionRef:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        return FunctionRef(ref.name, ref.qualifier or "$LATEST")

    async def _existing_function(self, params: Mapping[str, Any]) -> FunctionRef:
        ref = self._ref(params)
        qualifier = None if ref.qualifier == "$LATEST" else ref.qualifier
        try:
            await self.functions.resolve(ref.name, qualifier)
        except ResourceNotFoundException:
            raise ResourceNotFoundException("The function doesn't exist.") from None
        return ref

    def _missing(self, ref: FunctionRef) -> ResourceNotFoundException:
        arn = self.arns.function(ref.name, ref.qualifier)
        return ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")

    async def _stored(self, ref: FunctionRef) -> dict[str, Any]:
        assert ref.qualifier is not None
        config = await self.store.get_config(ref.name, ref.qualifier)
        if config is None:
            raise self._missing(ref)
        return config

    # -- validation --------------------------------------------------------------------------------

    async def _check(self, ref: FunctionRef, params: Mapping[str, Any]) -> None:
        if all(params.get(key) is None for key in (*SETTINGS, "DestinationConfig")):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting."
            )
        destinations = _destinations(params.get("DestinationConfig"))
        for arn in destinations.values():
            await self._check_destination(ref, arn, destinations)

    async def _check_destination(self, ref: FunctionRef, arn: str, destinations: dict[str, str]) -> None:
        service = service_of(arn)
        if service == "lambda":
            target = self.arns.parse_function(arn)
            if target.name == ref.name:
                raise InvalidParameterValueException(
                    "You can't specify the function as a destination for itself."
                )
            try:
                await self.functions.resolve(target.name, target.qualifier)
            except ResourceNotFoundException:
                raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.") from None
        elif service == "sqs":
            if not await self.queues.exists(arn):
                raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.")
        elif service in UNSUPPORTED:
            raise InvalidParameterValueException(
                f"The destination ARN {arn} is invalid: lambdad delivers to functions and queues only."
            )
        else:
            raise InvalidParameterValueException(
                f"The provided destination config {_java_repr(destinations)} is invalid."
            )

    # -- operations --------------------------------------------------------------------------------

    async def put(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = await self._existing_function(params)
        await self._check(ref, params)
        config = self._document(ref, params)
        assert ref.qualifier is not None
        await self.store.put_config(ref.name, ref.qualifier, config)
        return config

    async def update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = await self._existing_function(params)
        current = await self._stored(ref)
        await self._check(ref, params)
        merged: dict[str, Any] = {key: current[key] for key in SETTINGS if key in current}
        merged.update({key: params[key] for key in SETTINGS if params.get(key) is not None})
        given = params.get("DestinationConfig")
        destinations = dict(current.get("DestinationConfig") or {})
        if given is not None:
            destinations.update({k: v for k, v in given.items() if v is not None})
        merged["DestinationConfig"] = destinations
        config = self._document(ref, merged)
        assert ref.qualifier is not None
        await self.store.put_config(ref.name, ref.qualifier, config)
        return config

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return await self._stored(self._ref(params))

    async def delete(self, params: Mapping[str, Any]) -> None:
        ref = self._ref(params)
        assert ref.qualifier is not None
        if not await self.store.delete_config(ref.name, ref.qualifier):
            raise self._missing(ref)

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ref = await self._existing_function({"FunctionName": params["FunctionName"]})
        configs = await self.store.list_configs(ref.name)
        start = int(params["Marker"]) if str(params.get("Marker") or "").isdigit() else 0
        limit = params.get("MaxItems") or DEFAULT_PAGE
        result: dict[str, Any] = {"FunctionEventInvokeConfigs": configs[start : start + limit]}
        if start + limit < len(configs):
            result["NextMarker"] = str(start + limit)
        return result

    def _document(self, ref: FunctionRef, params: Mapping[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "FunctionArn": self.arns.function(ref.name, ref.qualifier),
            "LastModified": time.time(),
        }
        doc.update({key: params[key] for key in SETTINGS if params.get(key) is not None})
        given = params.get("DestinationConfig") or {}
        doc["DestinationConfig"] = {
            key: {"Destination": arn} if (arn := (given.get(key) or {}).get("Destination")) else {}
            for key in ("OnSuccess", "OnFailure")
        }
        return doc


def _destinations(config: Mapping[str, Any] | None) -> dict[str, str]:
    """{"OnSuccess": arn, "OnFailure": arn} for the destinations that name an ARN."""
    found: dict[str, str] = {}
    for key in ("OnSuccess", "OnFailure"):
        arn = ((config or {}).get(key) or {}).get("Destination")
        if arn:
            found[key] = arn
    return found


def _java_repr(destinations: Mapping[str, str]) -> str:
    """How AWS's (Java) service prints a DestinationConfig in its error message."""

    def part(key: str) -> str:
        arn = destinations.get(key)
        return f"{key}(destination={arn})" if arn else "null"

    return f"DestinationConfig(onSuccess={part('OnSuccess')}, onFailure={part('OnFailure')})"


def event_invoke_config_handlers(service: EventInvokeConfigs) -> dict[str, Handler]:
    """The handler of each operation, keyed by the API model's name."""
    return {
        "PutFunctionEventInvokeConfig": bind(service.put),
        "UpdateFunctionEventInvokeConfig": bind(service.update),
        "GetFunctionEventInvokeConfig": bind(service.get),
        "DeleteFunctionEventInvokeConfig": bind(service.delete),
        "ListFunctionEventInvokeConfigs": bind(service.list),
    }
