"""EventBridge Scheduler's rest-json API on lambdad's endpoint (``/schedules``, ``/schedule-groups``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.events.scheduler.service import SchedulerService
from lambdad.http import awsmodel
from lambdad.http.app import App, Handler, Request
from lambdad.http.errors import ValidationException


def scheduler_handlers(service: SchedulerService) -> dict[str, Handler]:
    bound = {
        "CreateSchedule": service.create,
        "GetSchedule": service.get,
        "UpdateSchedule": service.update,
        "DeleteSchedule": service.delete,
        "ListSchedules": service.list,
        "CreateScheduleGroup": service.create_group,
        "GetScheduleGroup": service.get_group,
        "DeleteScheduleGroup": service.delete_group,
        "ListScheduleGroups": service.list_groups,
    }
    handlers: dict[str, Handler] = {name: _adapt(method) for name, method in bound.items()}
    for name in ("TagResource", "UntagResource", "ListTagsForResource"):
        handlers[name] = _unsupported(name)
    return handlers


def _adapt(method: Any) -> Handler:
    async def handler(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await method(params)
        return result

    return handler


def _unsupported(name: str) -> Handler:
    async def handler(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        raise ValidationException(f"{name} is not supported by lambdad's scheduler yet.")

    return handler


def install_scheduler(app: App, service: SchedulerService) -> None:
    """Serve the Scheduler API next to Lambda's (tried only when no Lambda route matches)."""
    operations = awsmodel.build_operations(awsmodel.load_model("scheduler"))
    # Scheduler's paths carry a label in their second segment, so routes bucket by the first only
    router = awsmodel.RestRouter(operations, prefix_segments=1)
    app.rest_services.append((router, scheduler_handlers(service)))
