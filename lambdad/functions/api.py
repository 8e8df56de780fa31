"""Lambda API operations for function management, bound to the FunctionService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.functions.service import FunctionService
from lambdad.http.app import Handler, Request
from lambdad.http.errors import CodeSigningConfigNotFoundException


def function_handlers(service: FunctionService) -> dict[str, Handler]:
    """The handler of each operation this package answers, keyed by the API model's name."""

    async def create(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.create(params)

    async def get(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.get_function(params)

    async def get_configuration(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.get_configuration(params)

    async def list_functions(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.list(params)

    async def update_code(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.update_code(params)

    async def update_configuration(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.update_configuration(params)

    async def delete(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        await service.delete(params)
        return {"StatusCode": 204}

    async def account_settings(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.account_settings()

    async def tag(params: dict[str, Any], _: Request) -> None:
        await service.tag(params)

    async def untag(params: dict[str, Any], _: Request) -> None:
        await service.untag(params)

    async def list_tags(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.list_tags(params)

    # Code signing configs are not implemented (CreateCodeSigningConfig is an unknown operation), so
    # no function has one: these answer what AWS answers for a function without one.
    async def get_code_signing(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        await service.resolve(params["FunctionName"])
        return {}  # AWS sends an empty body here, although the model marks both members required

    async def put_code_signing(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        raise CodeSigningConfigNotFoundException(
            "The code signing configuration cannot be found. Check that the provided configuration is not "
            f"deleted: {params['CodeSigningConfigArn']}."
        )

    async def delete_code_signing(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        await service.resolve(params["FunctionName"])
        return {}

    async def put_concurrency(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.put_concurrency(params)

    async def get_concurrency(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        return await service.get_concurrency(params)

    async def delete_concurrency(params: dict[str, Any], _: Request) -> None:
        await service.delete_concurrency(params)

    return {
        "CreateFunction": create,
        "GetFunction": get,
        "GetFunctionConfiguration": get_configuration,
        "ListFunctions": list_functions,
        "UpdateFunctionCode": update_code,
        "UpdateFunctionConfiguration": update_configuration,
        "DeleteFunction": delete,
        "GetAccountSettings": account_settings,
        "TagResource": tag,
        "UntagResource": untag,
        "ListTags": list_tags,
        "PutFunctionConcurrency": put_concurrency,
        "GetFunctionConcurrency": get_concurrency,
        "DeleteFunctionConcurrency": delete_concurrency,
        "GetFunctionCodeSigningConfig": get_code_signing,
        "PutFunctionCodeSigningConfig": put_code_signing,
        "DeleteFunctionCodeSigningConfig": delete_code_signing,
    }
