"""Lambda API operations for function management, bound to the FunctionService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.functions.service import FunctionService
from lambdad.http.app import Handler, Request, bind
from lambdad.http.errors import CodeSigningConfigNotFoundException


def function_handlers(service: FunctionService) -> dict[str, Handler]:
    """The handler of each operation this package answers, keyed by the API model's name."""

    async def delete(params: dict[str, Any]) -> Mapping[str, Any]:
        await service.delete(params)
        return {"StatusCode": 204}

    async def account_settings(params: dict[str, Any]) -> Mapping[str, Any]:
        return await service.account_settings()

    # Code signing configs are not implemented (CreateCodeSigningConfig is an unknown operation), so
    # no function has one: these answer what AWS answers for a function without one.
    async def no_code_signing(params: dict[str, Any]) -> Mapping[str, Any]:
        await service.resolve(params["FunctionName"])
        return {}  # AWS sends an empty body here, although the model marks both members required

    async def put_code_signing(params: dict[str, Any], _: Request) -> Mapping[str, Any]:
        raise CodeSigningConfigNotFoundException(
            "The code signing configuration cannot be found. Check that the provided configuration is not "
            f"deleted: {params['CodeSigningConfigArn']}."
        )

    return {
        "CreateFunction": bind(service.create),
        "GetFunction": bind(service.get_function),
        "GetFunctionConfiguration": bind(service.get_configuration),
        "ListFunctions": bind(service.list),
        "UpdateFunctionCode": bind(service.update_code),
        "UpdateFunctionConfiguration": bind(service.update_configuration),
        "DeleteFunction": bind(delete),
        "GetAccountSettings": bind(account_settings),
        "TagResource": bind(service.tag),
        "UntagResource": bind(service.untag),
        "ListTags": bind(service.list_tags),
        "PutFunctionConcurrency": bind(service.put_concurrency),
        "GetFunctionConcurrency": bind(service.get_concurrency),
        "DeleteFunctionConcurrency": bind(service.delete_concurrency),
        "GetFunctionCodeSigningConfig": bind(no_code_signing),
        "PutFunctionCodeSigningConfig": put_code_signing,
        "DeleteFunctionCodeSigningConfig": bind(no_code_signing),
    }
