"""Lambda API operations of the invoke path, bound to the InvokeService."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from lambdad.http.app import Handler, Request
from lambdad.invoke.service import InvokeService


def invoke_handlers(service: InvokeService) -> dict[str, Handler]:
    def invoke(params: dict[str, Any], request: Request) -> Awaitable[Mapping[str, Any]]:
        return service.invoke(params, request.request_id)  # no coroutine of its own in between

    return {"Invoke": invoke}
