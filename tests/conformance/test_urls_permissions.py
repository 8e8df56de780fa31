"""Function URL configs and resource policies (permissions) of test_lambda_api."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.harness import Ctx, Driver, check, driver, params
from tests.serverproc import ACCOUNT, ServerProcess, make_zip

API = "test_lambda_api"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
# The URL tests' functions are nodejs20.x (which this host has), handler lambda_handler.handler.
URL_CODE = make_zip({"lambda_handler.js": "exports.handler = async (event) => event;\n"})


def _url_normalized(ctx: Ctx, entry: str) -> None:
    """The recordings replaced every function URL by the text ``lambda-url``; ours is replaced alike."""
    value = ctx.captured.get(entry)
    items = value.get("FunctionUrlConfigs", [value]) if isinstance(value, dict) else []
    for item in items:
        if isinstance(item, dict) and str(item.get("FunctionUrl", "")).startswith("http"):
            item["FunctionUrl"] = "lambda-url"


def _url_fn(ctx: Ctx) -> str:
    """A function with version 1 and alias ``urlalias``, as the URL tests set up."""
    name = ctx.name()
    ctx.create(name=name, Runtime="nodejs20.x", Handler="lambda_handler.handler", Code={"ZipFile": URL_CODE})
    ctx.capture("fn_version_result", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.capture(
        "create_alias_result",
        lambda: ctx.lam.create_alias(FunctionName=name, Name="urlalias", FunctionVersion="1"),
    )
    return name


@driver(API, "TestLambdaUrl::test_url_config_lifecycle")
def url_config_lifecycle(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    lam = ctx.lam
    for entry, call in (
        ("url_creation", lambda: lam.create_function_url_config(FunctionName=name, AuthType="NONE")),
        ("failed_duplication", lambda: lam.create_function_url_config(FunctionName=name, AuthType="NONE")),
        ("get_url_config", lambda: lam.get_function_url_config(FunctionName=name)),
        ("updated_url_config", lambda: lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")),
    ):
        ctx.capture(entry, call)
        _url_normalized(ctx, entry)
    lam.delete_function_url_config(FunctionName=name)
    ctx.capture("failed_getter", lambda: lam.get_function_url_config(FunctionName=name))


@driver(API, "TestLambdaUrl::test_url_config_list_paging")
def url_config_list_paging(ctx: Ctx) -> None:
    name = _url_fn(ctx)
    lam = ctx.lam
    ctx.capture("list_function_notfound", lambda: lam.list_function_url_configs(FunctionName="doesnotexist"))
    ctx.capture("list_all_empty", lambda: lam.list_function_url_configs(FunctionName=name))
    for entry, call in (
        ("url_config_fn", lambda: lam.create_function_url_config(FunctionName=name, AuthType="NONE")),
        (
            "url_config_alias",
            lambda: lam.create_function_url_config(FunctionName=name, Qualifier="urlalias", AuthType="NONE"),
        ),
        ("list_all", lambda: lam.list_function_url_configs(FunctionName=name)),
    ):
        ctx.capture(entry, call)
        _url_normalized(ctx, entry)


_URL_OPS = ("create", "get", "delete", "update")


@driver(
    API,
    "TestLambdaUrl::test_url_config_exceptions",
    # delete_..._qualifier_alias_doesnotmatch_arn is not compared: AWS failed internally there.
    entries=["fn_version_result", "create_alias_result"]
    + [
        f"{op}_function_url_config_{case}"
        for op in _URL_OPS
        for case in (
            "name_doesnotexist",
            "arn_doesnotexist",
            "name_doesnotexist_qualifier",
            "qualifier_version",
            "qualifier_version_doesnotexist",
            "qualifier_alias_doesnotexist",
            "qualifier_alias_doesnotmatch_arn",
            "qualifier_latest",
            "config_doesnotexist",
        )
        if not (op == "create" and case == "config_doesnotexist")
        and not (op == "delete" and case == "qualifier_alias_doesnotmatch_arn")
    ],
)
def url_config_exceptions(ctx: Ctx) -> None:
    name = _url_fn(ctx)
    for op in _URL_OPS:
        call = getattr(ctx.raw, f"{op}_function_url_config")
        extra: dict[str, Any] = {"AuthType": "NONE"} if op in ("create", "update") else {}

        def cap(
            case: str, fn: str, op: str = op, call: Any = call, extra: dict[str, Any] = extra, **kw: Any
        ) -> None:
            ctx.capture(f"{op}_function_url_config_{case}", lambda: call(FunctionName=fn, **extra, **kw))

        cap("name_doesnotexist", "doesnotexist")
        cap("arn_doesnotexist", f"{ARN}doesnotexist")
        cap("name_doesnotexist_qualifier", "doesnotexist", Qualifier="1")
        cap("qualifier_version", name, Qualifier="1")
        cap("qualifier_version_doesnotexist", name, Qualifier="2")
        cap("qualifier_alias_doesnotexist", name, Qualifier="alias-doesnotexist")
        cap("qualifier_alias_doesnotmatch_arn", f"{ARN}{name}:urlalias", Qualifier="alias-doesnotexist")
        cap("qualifier_latest", name, Qualifier="$LATEST")
        if op != "create":
            cap("config_doesnotexist", name)


# -- permissions -------------------------------------------------------------------------------------


@driver(API, "TestLambdaPermissions::test_permission_exceptions")
def permission_exceptions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    base = {"Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com", "StatementId": "s3"}

    def add(entry: str, fn: str = name, **kw: Any) -> None:
        ctx.capture(entry, lambda: ctx.raw.add_permission(**{"FunctionName": fn, **base, **kw}))

    add("add_permission_invalid_statement_id", StatementId="example.com")
    add("add_permission_fn_qualifier_mismatch", f"{ARN}{name}:$LATEST", Qualifier="1")
    add("add_permission_fn_qualifier_latest", Qualifier="$LATEST")
    add("add_permission_principal_invalid", Principal="invalid.nonaws.com")
    ctx.capture("get_policy_fn_doesnotexist", lambda: ctx.lam.get_policy(FunctionName="doesnotexist"))
    ctx.capture(
        "get_policy_fn_version_doesnotexist", lambda: ctx.lam.get_policy(FunctionName=name, Qualifier="42")
    )
    add("add_permission_fn_doesnotexist", "doesnotexist")
    ctx.capture(
        "remove_permission_policy_doesnotexist",
        lambda: ctx.lam.remove_permission(FunctionName=name, StatementId="s3"),
    )
    add("add_permission_fn_alias_doesnotexist", Qualifier="alias-doesnotexist")
    add("add_permission_fn_version_doesnotexist", Qualifier="42")
    add("add_permission_fn_qualifier_invalid", Qualifier="invalid-qualifier-with-?-char")
    add("add_permission_fn_qualifier_valid_doesnotexist", Qualifier="valid-with-$-but-doesnotexist")
    ctx.lam.add_permission(FunctionName=name, **base)
    add("add_permission_conflicting_statement_id")
    ctx.capture(
        "remove_permission_fn_doesnotexist",
        lambda: ctx.lam.remove_permission(FunctionName="doesnotexist", StatementId="s3"),
    )
    ctx.capture(
        "remove_permission_fn_alias_doesnotexist",
        lambda: ctx.lam.remove_permission(
            FunctionName=name, StatementId="s3", Qualifier="alias-doesnotexist"
        ),
    )


@pytest.mark.parametrize(("drv", "entry"), list(params(__name__)))
def test_recorded(drv: Driver, entry: str, server: ServerProcess) -> None:
    check(drv, entry, server)
