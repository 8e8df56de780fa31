"""Lambda API operations on a function's sub-resources: versions, aliases, policies, URLs, layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.functions import versions
from lambdad.functions.aliases import AliasService
from lambdad.functions.policies import PolicyService
from lambdad.functions.service import FunctionService
from lambdad.functions.url_http import Invoker, UrlHandler
from lambdad.functions.urls import UrlService
from lambdad.http.app import App, Handler, Request


def install_function_resources(app: App, functions: FunctionService, invoker: Invoker) -> None:
    """Bind the operations to ``app`` and route function URLs (by Host) to their handler."""
    policies = PolicyService(functions)
    urls = UrlService(functions)
    app.lambda_handlers.update(resource_handlers(functions, policies, urls))
    app.url_route = UrlHandler(urls, policies, invoker, app.authenticate)


def resource_handlers(
    functions: FunctionService, policies: PolicyService, urls: UrlService
) -> dict[str, Handler]:
    """The handler of each operation, keyed by the API model's name."""
    aliases = AliasService(functions)

    async def publish_version(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await functions.publish_version(params)

    async def list_versions(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await versions.list_versions(functions, params)

    async def create_alias(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await aliases.create(params)

    async def get_alias(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await aliases.get(params)

    async def update_alias(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await aliases.update(params)

    async def delete_alias(params: dict[str, Any], _: Request) -> None:
        await aliases.delete(params)

    async def list_aliases(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await aliases.list(params)

    async def add_permission(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await policies.add(params)

    async def remove_permission(params: dict[str, Any], _: Request) -> None:
        await policies.remove(params)

    async def get_policy(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await policies.get(params)

    async def create_url(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await urls.create(params)

    async def get_url(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await urls.get(params)

    async def update_url(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await urls.update(params)

    async def delete_url(params: dict[str, Any], _: Request) -> None:
        await urls.delete(params)

    async def list_urls(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await urls.list(params)

    return {
        "CreateFunctionUrlConfig": create_url,
        "GetFunctionUrlConfig": get_url,
        "UpdateFunctionUrlConfig": update_url,
        "DeleteFunctionUrlConfig": delete_url,
        "ListFunctionUrlConfigs": list_urls,
        "AddPermission": add_permission,
        "RemovePermission": remove_permission,
        "GetPolicy": get_policy,
        "PublishVersion": publish_version,
        "ListVersionsByFunction": list_versions,
        "CreateAlias": create_alias,
        "GetAlias": get_alias,
        "UpdateAlias": update_alias,
        "DeleteAlias": delete_alias,
        "ListAliases": list_aliases,
    }
