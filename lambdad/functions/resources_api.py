"""Lambda API operations on a function's sub-resources: versions, aliases, policies, URLs, layers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lambdad.functions import versions
from lambdad.functions.aliases import AliasService
from lambdad.functions.layers import LayerService
from lambdad.functions.policies import PolicyService
from lambdad.functions.provisioned import ProvisionedService
from lambdad.functions.service import FunctionService
from lambdad.functions.url_http import Invoker, UrlHandler
from lambdad.functions.urls import UrlService
from lambdad.http.app import App, Handler, Request
from lambdad.store.blobs import BlobStore


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


def layer_handlers(layers: LayerService, blobs: BlobStore) -> dict[str, Handler]:
    """The layer operations, keyed by the API model's name."""

    async def publish(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.publish(params)

    async def get(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.get(params)

    async def get_by_arn(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.get_by_arn(params)

    async def list_layers(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.list_layers(params)

    async def list_versions(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.list_versions(params)

    async def delete(params: dict[str, Any], _: Request) -> None:
        for sha in await layers.delete(params):
            await asyncio.to_thread(blobs.delete, sha)

    async def add_permission(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.add_permission(params)

    async def remove_permission(params: dict[str, Any], _: Request) -> None:
        await layers.remove_permission(params)

    async def get_policy(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await layers.get_policy(params)

    return {
        "PublishLayerVersion": publish,
        "GetLayerVersion": get,
        "GetLayerVersionByArn": get_by_arn,
        "ListLayers": list_layers,
        "ListLayerVersions": list_versions,
        "DeleteLayerVersion": delete,
        "AddLayerVersionPermission": add_permission,
        "RemoveLayerVersionPermission": remove_permission,
        "GetLayerVersionPolicy": get_policy,
    }


def provisioned_handlers(service: ProvisionedService) -> dict[str, Handler]:
    """The provisioned-concurrency operations, keyed by the API model's name."""

    async def put(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.put(params)

    async def get(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.get(params)

    async def delete(params: dict[str, Any], _: Request) -> None:
        await service.delete(params)

    async def list_configs(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.list(params)

    return {
        "PutProvisionedConcurrencyConfig": put,
        "GetProvisionedConcurrencyConfig": get,
        "DeleteProvisionedConcurrencyConfig": delete,
        "ListProvisionedConcurrencyConfigs": list_configs,
    }
