"""Lambda API operations for event source mappings, bound to the MappingService."""

from __future__ import annotations

from lambdad.events.mappings.service import MappingService
from lambdad.http.app import Handler, bind


def mapping_handlers(service: MappingService) -> dict[str, Handler]:
    return {
        "CreateEventSourceMapping": bind(service.create),
        "GetEventSourceMapping": bind(service.get),
        "UpdateEventSourceMapping": bind(service.update),
        "DeleteEventSourceMapping": bind(service.delete),
        "ListEventSourceMappings": bind(service.list),
    }
