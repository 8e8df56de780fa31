"""TestLambdaFunction of test_lambda_api: lifecycle, validation, ARNs, regions, listing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.harness import Ctx, Driver, allow, check, driver, params
from tests.conformance.normalize import normalize
from tests.serverproc import ACCOUNT, PY_ECHO, ROLE, ServerProcess, make_zip

API = "test_lambda_api"
PY_ECHO_2 = make_zip({"handler.py": "def handler(event, context):\n    return {'v': 2, 'event': event}\n"})


@driver(API, "TestLambdaFunction::test_function_lifecycle")
def function_lifecycle(ctx: Ctx) -> None:
    # Recorded with MemorySize 256 / Timeout 5 (LocalStack's fixture arguments); python3.12 -> 3.11.
    name = ctx.name()
    ctx.create("create_response", name=name, MemorySize=256, Timeout=5)
    ctx.capture("get_function_response", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "update_func_conf_response",
        lambda: ctx.lam.update_function_configuration(
            FunctionName=name,
            Runtime="python3.11",
            Description="Changed-Description",
            MemorySize=512,
            Timeout=10,
            Environment={"Variables": {"ENV_A": "a"}},
        ),
    )
    ctx.wait_active(name)
    ctx.capture("get_function_response_postupdate", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "update_code_response", lambda: ctx.lam.update_function_code(FunctionName=name, ZipFile=PY_ECHO_2)
    )
    ctx.wait_active(name)
    ctx.capture("get_function_response_postcodeupdate", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture("delete_response", lambda: ctx.lam.delete_function(FunctionName=name))
    ctx.capture("delete_postdelete", lambda: ctx.lam.delete_function(FunctionName=name))


# The recording's update changed python3.12 to python3.11 (a runtime change); ours starts on
# python3.11 already, which is the only Python this host has, so the update sets the same runtime.
allow(
    "TestLambdaFunction::test_function_lifecycle",
    "*",
    "*RuntimeVersionConfig",
    {"RuntimeVersionArn": "arn:<partition>:lambda:<region>::runtime:<resource:3>"},
    {"RuntimeVersionArn": "arn:<partition>:lambda:<region>::runtime:<resource:2>"},
    "AWS changed runtime (3.12 -> 3.11) so the runtime version ARN changed; ours keeps python3.11",
)


@driver(API, "TestLambdaFunction::test_redundant_updates")
def redundant_updates(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create("create_response", name=name, Description="Initial description")
    ctx.capture(
        "first_update_result",
        lambda: ctx.lam.update_function_configuration(
            FunctionName=name, Description="1st update description"
        ),
    )
    ctx.wait_active(name)
    ctx.capture("get_fn_config_result", lambda: ctx.lam.get_function_configuration(FunctionName=name))
    ctx.capture("get_fn_result", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "redundant_update_result",
        lambda: ctx.lam.update_function_configuration(
            FunctionName=name, Description="1st update description"
        ),
    )
    ctx.wait_active(name)
    ctx.capture("get_fn_result_after_redundant_update", lambda: ctx.lam.get_function(FunctionName=name))


def _mismatch_call(op: str) -> Any:
    def run(ctx: Ctx) -> None:
        call = getattr(ctx.lam, op)
        arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:some-function"
        ctx.capture("not_match_exception", lambda: call(FunctionName=f"{arn}:$LATEST", Qualifier="version"))
        ctx.capture("match_exception", lambda: call(FunctionName=f"{arn}:$LATEST", Qualifier="$LATEST"))

    return run


for _op in ("delete_function", "get_function", "get_function_configuration"):
    driver(API, f"TestLambdaFunction::test_ops_with_arn_qualifier_mismatch[{_op}]")(_mismatch_call(_op))


def _nonexisting_version(op: str) -> Any:
    def run(ctx: Ctx) -> None:
        name = ctx.name()
        ctx.create(name=name)
        call = getattr(ctx.lam, op)
        ctx.capture("version_not_found_exception", lambda: call(FunctionName=name, Qualifier="1221"))

    return run


for _op in ("get_function", "get_function_configuration", "get_function_event_invoke_config"):
    driver(API, f"TestLambdaFunction::test_ops_on_nonexisting_version[{_op}]")(_nonexisting_version(_op))


@driver(API, "TestLambdaFunction::test_delete_on_nonexisting_version")
def delete_on_nonexisting_version(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.capture("delete_function_response_non_existent", lambda: ctx.lam.delete_function(FunctionName=name))
    ctx.capture(
        "delete_function_response_non_existent_with_qualifier",
        lambda: ctx.lam.delete_function(FunctionName=name, Qualifier="1221"),
    )


def _nonexisting_fn(op: str) -> Any:
    def run(ctx: Ctx) -> None:
        call = getattr(ctx.lam, op)
        ctx.capture("not_found_exception", lambda: call(FunctionName=ctx.name("nonexisting")))

    return run


for _op in (
    "delete_function",
    "get_function",
    "get_function_configuration",
    "get_function_url_config",
    "get_function_code_signing_config",
    "get_function_event_invoke_config",
    "get_function_concurrency",
):
    driver(API, f"TestLambdaFunction::test_ops_on_nonexisting_fn[{_op}]")(_nonexisting_fn(_op))


def _wrong_region(op: str) -> Any:
    def run(ctx: Ctx) -> None:
        name = ctx.name()
        ctx.create(name=name)
        call = getattr(ctx.lam, op)
        arn = f"arn:aws:lambda:us-west-2:{ACCOUNT}:function:{name}"
        ctx.capture("wrong_region_exception", lambda: call(FunctionName=arn))

    return run


for _op in (
    "get_function",
    "get_function_configuration",
    "get_function_url_config",
    "get_function_code_signing_config",
    "get_function_event_invoke_config",
    "get_function_concurrency",
    "delete_function",
    "invoke",
):
    driver(API, f"TestLambdaFunction::test_get_function_wrong_region[{_op}]")(_wrong_region(_op))


# get-function-response-updated is not compared: AWS was still InProgress when it was read, a timing
# and not a contract (lambdad's update of a small zip is already Successful).
@driver(
    API,
    "TestLambdaFunction::test_lambda_code_location_zipfile",
    entries=["create-response-zip-file", "get-function-response", "update-function-response"],
)
def code_location_zipfile(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create("create-response-zip-file", name=name, fixture=False, Handler="index.handler")
    ctx.capture("get-function-response", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "update-function-response", lambda: ctx.lam.update_function_code(FunctionName=name, ZipFile=PY_ECHO_2)
    )


@driver(API, "TestLambdaFunction::test_create_lambda_exceptions")
def create_lambda_exceptions(ctx: Ctx) -> None:
    base = {"Runtime": "python3.11", "Role": ROLE, "Handler": "handler.handler", "Code": {"ZipFile": PY_ECHO}}

    def create(entry: str, client: Any = None, **kw: Any) -> None:
        args = {**base, "FunctionName": ctx.name(), **kw}
        ctx.capture(entry, lambda: (client or ctx.raw).create_function(**args))

    create("invalid_role_arn_exc", Role="r1")
    create("invalid_runtime_exc", Runtime="non-existent-runtime")
    create("uppercase_runtime_exc", Runtime="PYTHON3.9")
    create("empty_architectures", client=ctx.lam, Architectures=[])
    create("multiple_architectures", Architectures=["x86_64", "arm64"])
    create("uppercase_architecture", Architectures=["X86_64"])
    create("invalid_zip_exc", Code={"ZipFile": b"this is not a zip file"})


@driver(API, "TestLambdaFunction::test_update_lambda_exceptions")
def update_lambda_exceptions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    upd = ctx.raw.update_function_configuration
    ctx.capture("invalid_role_arn_exc", lambda: upd(FunctionName=name, Role="r1"))
    ctx.capture("invalid_runtime_exc", lambda: upd(FunctionName=name, Runtime="non-existent-runtime"))
    ctx.capture("uppercase_runtime_exc", lambda: upd(FunctionName=name, Runtime="PYTHON3.9"))


allow(
    "TestLambdaFunction::test_function_arns",
    "invalid_function_name_exc",
    "*essage",
    "1 validation error detected: Value 'invalid:function:name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
    "1 validation error detected: Value 'invalid:function:name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?",
    "the message quotes the FunctionName pattern of botocore's current model, which AWS has since widened",
)
allow(
    "TestLambdaFunction::test_function_arns",
    "function_arn_other_account_exc",
    "Error.Message",
    None,
    "User is not authorized to access functions of account 111111111111 from account 111111111111.",
    "AWS sends AccessDeniedException without a message; lambdad names the accounts (both normalise "
    "to 111111111111 here, the recorded account)",
)


@driver(API, "TestLambdaFunction::test_function_arns")
def function_arns(ctx: Ctx) -> None:
    name1, name2 = ctx.name(), ctx.name()
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name1}"
    ctx.create("create-function-arn-response", name=arn)
    ctx.create("create-function-partial-arn-response", name=f"{ACCOUNT}:function:{name2}")
    get = ctx.raw.get_function
    ctx.capture("invalid_function_name_exc", lambda: get(FunctionName="invalid:function:name"))
    ctx.capture("long_function_name_exc", lambda: get(FunctionName="a" * 65))
    long_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:" + "a" * 101
    ctx.capture("long_function_arn_exc", lambda: get(FunctionName=long_arn))
    other_region = f"arn:aws:lambda:ap-southeast-1:{ACCOUNT}:function:{name1}"
    ctx.capture("function_arn_other_region_exc", lambda: get(FunctionName=other_region))
    other_account = f"arn:aws:lambda:us-east-1:111111111111:function:{name1}"
    ctx.capture("function_arn_other_account_exc", lambda: get(FunctionName=other_account))


@driver(
    API,
    "TestLambdaFunction::test_list_functions",
)
def list_functions(ctx: Ctx) -> None:
    # The server is shared, so the lists are filtered to this driver's two functions (AWS's account
    # had only them in the recording); both lists are sorted by name as AWS's were.
    name1, name2 = sorted([ctx.name(), ctx.name()])
    ctx.create("create_response_1", name=name1, Publish=True)
    ctx.create("create_response_2", name=name2)
    ctx.capture(
        "list_functions_invalid_functionversion", lambda: ctx.raw.list_functions(FunctionVersion="invalid")
    )

    def listed(**kwargs: Any) -> dict[str, Any]:
        functions = []
        for page in ctx.lam.get_paginator("list_functions").paginate(**kwargs):
            functions += [f for f in page["Functions"] if f["FunctionName"] in (name1, name2)]
        return {"Functions": functions}  # LocalStack snapshotted the bare list

    ctx.captured["list_all"] = normalize(listed(FunctionVersion="ALL"))
    ctx.captured["list_default"] = normalize(listed())


_CSC_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-0123456789abcdef0"


# lambdad stores no code signing configs (Create/Get/Update/Delete/ListCodeSigningConfig(s) are unknown
# operations), so only the entries about functions without one, and unknown configs, are compared.
@driver(
    API,
    "TestCodeSigningConfig::test_code_signing_not_found_excs",
    entries=[
        "nothing_to_delete_response",
        "delete_function_csc_fnnotfound",
        "put_function_csc_invalid_fnname",
        "put_function_csc_invalid_csc_arn",
        "put_function_csc_invalid_both",
        "get_function_csc_fnwithoutcsc",
        "get_function_csc_nonexistingfn",
    ],
    xfail={
        "put_function_csc_invalid_fnname": "lambdad has no code signing configs, so it answers "
        "CodeSigningConfigNotFoundException before looking for the function; AWS found the (valid) "
        "config and reported the missing function",
    },
)
def code_signing_not_found_excs(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    missing = "csc-test-doesnotexist"
    ctx.capture(
        "nothing_to_delete_response", lambda: ctx.lam.delete_function_code_signing_config(FunctionName=name)
    )
    ctx.capture(
        "delete_function_csc_fnnotfound",
        lambda: ctx.lam.delete_function_code_signing_config(FunctionName=missing),
    )
    put = ctx.lam.put_function_code_signing_config
    ctx.capture(
        "put_function_csc_invalid_fnname", lambda: put(FunctionName=missing, CodeSigningConfigArn=_CSC_ARN)
    )
    ctx.capture(
        "put_function_csc_invalid_csc_arn", lambda: put(FunctionName=name, CodeSigningConfigArn=_CSC_ARN)
    )
    ctx.capture(
        "put_function_csc_invalid_both", lambda: put(FunctionName=missing, CodeSigningConfigArn=_CSC_ARN)
    )
    get = ctx.lam.get_function_code_signing_config
    ctx.capture("get_function_csc_fnwithoutcsc", lambda: get(FunctionName=name))
    ctx.capture("get_function_csc_nonexistingfn", lambda: get(FunctionName=missing))


@pytest.mark.parametrize(("drv", "entry"), list(params(__name__)))
def test_recorded(drv: Driver, entry: str, server: ServerProcess) -> None:
    check(drv, entry, server)
