"""Lambda API operations of the invoke path, bound to the InvokeService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.http.app import Handler, Request
from lambdad.invoke.service import InvokeService


def invoke_handlers(service: InvokeService) -> dict[str, Handler]:
    async def invoke(params: dict[str, Any], request: Request) -> Mapping[str, Any]:
        return await service.invoke(params, request.request_id)

    return {"Invoke": invoke}
