"""Lambda API operations for event source mappings, bound to the MappingService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.events.mappings.service import MappingService
from lambdad.http.app import Handler, Request


def mapping_handlers(service: MappingService) -> dict[str, Handler]:
    async def create(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.create(params)

    async def get(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.get(params)

    async def update(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.update(params)

    async def delete(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.delete(params)

    async def list_mappings(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.list(params)

    return {
        "CreateEventSourceMapping": create,
        "GetEventSourceMapping": get,
        "UpdateEventSourceMapping": update,
        "DeleteEventSourceMapping": delete,
        "ListEventSourceMappings": list_mappings,
    }
