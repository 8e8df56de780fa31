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
from lambdad.http.app import App, Handler, bind
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

    async def list_versions(params: dict[str, Any]) -> Mapping[str, Any]:
        return await versions.list_versions(functions, params)

    return {
        "CreateFunctionUrlConfig": bind(urls.create),
        "GetFunctionUrlConfig": bind(urls.get),
        "UpdateFunctionUrlConfig": bind(urls.update),
        "DeleteFunctionUrlConfig": bind(urls.delete),
        "ListFunctionUrlConfigs": bind(urls.list),
        "AddPermission": bind(policies.add),
        "RemovePermission": bind(policies.remove),
        "GetPolicy": bind(policies.get),
        "PublishVersion": bind(functions.publish_version),
        "ListVersionsByFunction": bind(list_versions),
        "CreateAlias": bind(aliases.create),
        "GetAlias": bind(aliases.get),
        "UpdateAlias": bind(aliases.update),
        "DeleteAlias": bind(aliases.delete),
        "ListAliases": bind(aliases.list),
    }


def layer_handlers(layers: LayerService, blobs: BlobStore) -> dict[str, Handler]:
    """The layer operations, keyed by the API model's name."""

    async def delete(params: dict[str, Any]) -> None:
        for sha in await layers.delete(params):
            await asyncio.to_thread(blobs.delete, sha)

    return {
        "PublishLayerVersion": bind(layers.publish),
        "GetLayerVersion": bind(layers.get),
        "GetLayerVersionByArn": bind(layers.get_by_arn),
        "ListLayers": bind(layers.list_layers),
        "ListLayerVersions": bind(layers.list_versions),
        "DeleteLayerVersion": bind(delete),
        "AddLayerVersionPermission": bind(layers.add_permission),
        "RemoveLayerVersionPermission": bind(layers.remove_permission),
        "GetLayerVersionPolicy": bind(layers.get_policy),
    }


def provisioned_handlers(service: ProvisionedService) -> dict[str, Handler]:
    """The provisioned-concurrency operations, keyed by the API model's name."""
    return {
        "PutProvisionedConcurrencyConfig": bind(service.put),
        "GetProvisionedConcurrencyConfig": bind(service.get),
        "DeleteProvisionedConcurrencyConfig": bind(service.delete),
        "ListProvisionedConcurrencyConfigs": bind(service.list),
    }
