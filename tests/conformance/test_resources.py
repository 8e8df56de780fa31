"""Tags, reserved concurrency, aliases, versions (test_lambda_api) and invokes (test_lambda)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.harness import MISSING, Ctx, Driver, allow, check, driver, params
from tests.serverproc import ACCOUNT, ServerProcess, make_zip

API = "test_lambda_api"
LAMBDA = "test_lambda"


@driver(API, "TestLambdaTag::test_tag_nonexisting_resource")
def tag_nonexisting_resource(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    ctx.capture("pre_delete_get_function", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.lam.delete_function(FunctionName=name)
    ctx.capture("not_found_exception_tag", lambda: ctx.lam.tag_resource(Resource=arn, Tags={"A": "a"}))
    ctx.capture("not_found_exception_untag", lambda: ctx.lam.untag_resource(Resource=arn, TagKeys=["A"]))
    ctx.capture("not_found_exception_list", lambda: ctx.lam.list_tags(Resource=arn))


@driver(
    API,
    "TestLambdaTags::test_tag_exceptions",
    entries=[
        "tag_lambda_doesnotexist",
        "tag_lambda_qualifier_doesnotexist",
        "list_tag_lambda_empty",
        "untag_nomatch",
        "untag_empty_keys",
        "tag_empty_tags",
    ],
    # tag_lambda_invalidarn is not compared: AWS's message quotes a Resource pattern (with
    # capacity-provider ARNs) that botocore's model and lambdad do not have.
)
def tag_exceptions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    missing = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:doesnotexist"
    ctx.capture("tag_lambda_doesnotexist", lambda: ctx.lam.tag_resource(Resource=missing, Tags={"a": "b"}))
    ctx.capture(
        "tag_lambda_qualifier_doesnotexist",
        lambda: ctx.lam.tag_resource(Resource=f"{arn}:alias", Tags={"a": "b"}),
    )
    ctx.capture("list_tag_lambda_empty", lambda: ctx.lam.list_tags(Resource=arn))
    ctx.capture("untag_nomatch", lambda: ctx.lam.untag_resource(Resource=arn, TagKeys=["somekey"]))
    ctx.capture("untag_empty_keys", lambda: ctx.raw.untag_resource(Resource=arn, TagKeys=[]))
    ctx.capture("tag_empty_tags", lambda: ctx.raw.tag_resource(Resource=arn, Tags={}))


@driver(API, "TestLambdaReservedConcurrency::test_function_concurrency")
def function_concurrency(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    put = ctx.lam.put_function_concurrency
    ctx.capture(
        "put_function_concurrency_with_reserved_0",
        lambda: put(FunctionName=name, ReservedConcurrentExecutions=0),
    )
    ctx.capture(
        "put_function_concurrency_with_reserved_1",
        lambda: put(FunctionName=name, ReservedConcurrentExecutions=1),
    )
    ctx.capture("get_function_concurrency", lambda: ctx.lam.get_function_concurrency(FunctionName=name))
    ctx.capture("delete_response", lambda: ctx.lam.delete_function_concurrency(FunctionName=name))
    ctx.capture(
        "get_function_concurrency_after_delete", lambda: ctx.lam.get_function_concurrency(FunctionName=name)
    )


def _alias_fn(ctx: Ctx) -> str:
    name = ctx.name()
    ctx.create(
        "create_response",
        name=name,
        fixture=False,
        Handler="index.handler",
        Environment={"Variables": {"testenv": "staging"}},
    )
    return name


@driver(API, "TestLambdaAlias::test_non_existent_alias_deletion")
def non_existent_alias_deletion(ctx: Ctx) -> None:
    name = _alias_fn(ctx)
    ctx.capture("delete_alias_response", lambda: ctx.lam.delete_alias(FunctionName=name, Name="non-existent"))


@driver(API, "TestLambdaAlias::test_non_existent_alias_update")
def non_existent_alias_update(ctx: Ctx) -> None:
    name = _alias_fn(ctx)
    ctx.capture(
        "update_alias_response",
        lambda: ctx.lam.update_alias(FunctionName=name, Name="non-existent", Description="new"),
    )


for _field in ("LoggingConfig", "RuntimeVersionConfig", "SnapStart"):
    allow(
        "TestLambdaVersions::test_publish_with_wrong_revisionid",
        "*",
        f"*{_field}",
        MISSING,
        "(present)",
        f"recorded before AWS added {_field} to function configurations (it is in botocore's model)",
    )


@driver(API, "TestLambdaVersions::test_publish_with_wrong_revisionid")
def publish_with_wrong_revisionid(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create("create_response", name=name, fixture=False, Handler="index.handler")
    got = ctx.capture("get_fn_response", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "publish_wrong_revisionid_exc",
        lambda: ctx.lam.publish_version(FunctionName=name, RevisionId="doesntexist"),
    )
    revision = got["Configuration"]["RevisionId"]
    ctx.capture("publish_result", lambda: ctx.lam.publish_version(FunctionName=name, RevisionId=revision))


@driver(API, "TestLambdaVersions::test_publish_with_wrong_sha256")
def publish_with_wrong_sha256(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create("create_response", name=name, fixture=False, Handler="index.handler")
    got = ctx.capture("get_fn_response", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "publish_wrong_sha256_exc",
        lambda: ctx.lam.publish_version(FunctionName=name, CodeSha256="somenonexistentsha256"),
    )
    sha = got["Configuration"]["CodeSha256"]
    ctx.capture("publish_result", lambda: ctx.lam.publish_version(FunctionName=name, CodeSha256=sha))


@driver(API, "TestLambdaTags::test_tag_lifecycle")
def tag_lifecycle(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name, Tags={"key_a": "value_a"})
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"

    def read(suffix: str) -> None:
        ctx.capture(f"list_tags_response_{suffix}", lambda: ctx.lam.list_tags(Resource=arn))
        ctx.capture(f"get_fn_response_{suffix}", lambda: ctx.lam.get_function(FunctionName=name))

    read("postfncreate")
    more = {"key_b": "value_b", "key_c": "value_c", "key_d": "value_d", "key_e": "value_e"}
    ctx.capture("tag_resource_response", lambda: ctx.lam.tag_resource(Resource=arn, Tags=more))
    read("postaddtags")
    ctx.capture(
        "tag_resource_overwrite", lambda: ctx.lam.tag_resource(Resource=arn, Tags={"key_c": "value_x"})
    )
    read("overwrite")
    ctx.lam.untag_resource(Resource=arn, TagKeys=["key_c", "key_d"])
    read("postuntag")
    ctx.lam.untag_resource(Resource=arn, TagKeys=["key_a", "key_b", "key_e"])
    read("postuntagall")
    ctx.lam.delete_function(FunctionName=name)
    ctx.capture("list_tags_postdelete", lambda: ctx.lam.list_tags(Resource=arn))


@driver(API, "TestLambdaTags::test_tag_versions")
def tag_versions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name, Publish=True)
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    tags = {"a": "b"}
    ctx.capture("tag_resource_exception", lambda: ctx.lam.tag_resource(Resource=f"{arn}:1", Tags=tags))
    ctx.capture(
        "tag_resource_latest_exception", lambda: ctx.lam.tag_resource(Resource=f"{arn}:$LATEST", Tags=tags)
    )


@driver(API, "TestLambdaTags::test_tag_limits")
def tag_limits(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    many = {f"{n}_key": f"{n}_value" for n in range(51)}
    fifty = {f"{n}_key": f"{n}_value" for n in range(50)}
    ctx.capture("tag_lambda_too_many_tags", lambda: ctx.lam.tag_resource(Resource=arn, Tags=many))
    ctx.capture("tag_response", lambda: ctx.lam.tag_resource(Resource=arn, Tags=fifty))
    ctx.capture("list_tags_response", lambda: ctx.lam.list_tags(Resource=arn))
    ctx.capture("get_fn_response", lambda: ctx.lam.get_function(FunctionName=name))
    ctx.capture(
        "tag_lambda_too_many_tags_additional",
        lambda: ctx.lam.tag_resource(Resource=arn, Tags={"a_key": "a_value"}),
    )
    ctx.capture(
        "create_function_invalid_tags",
        lambda: ctx.create(name=ctx.name(), Tags=many),
    )


# -- invokes (test_lambda.snapshot.json) -------------------------------------------------------------
# The recordings invoked python3.9/3.10 and nodejs16.x functions; ours are python3.11 (the payload
# contract does not depend on the runtime version).


def _invoke_fn(ctx: Ctx, source: str, **overrides: Any) -> str:
    name = ctx.name()
    ctx.create(name=name, Code={"ZipFile": make_zip({"handler.py": source})}, **overrides)
    return name


ECHO = "def handler(event, context):\n    return event\n"
NONE = "def handler(event, context):\n    return None\n"


def _invocation_type(kind: str, runtime: str) -> None:
    def run(ctx: Ctx) -> None:
        name = _invoke_fn(ctx, ECHO)
        ctx.capture(
            "invoke-result",
            lambda: ctx.lam.invoke(FunctionName=name, InvocationType=kind, Payload=b"{}"),
        )

    test = {"RequestResponse": "request_response", "Event": "event", "DryRun": "dry_run"}[kind]
    driver(LAMBDA, f"TestLambdaFeatures::test_invocation_type_{test}[{runtime}]")(run)


for _kind in ("RequestResponse", "Event", "DryRun"):
    _invocation_type(_kind, "python3.10")


def _no_return_payload(kind: str) -> None:
    def run(ctx: Ctx) -> None:
        name = _invoke_fn(ctx, NONE)
        ctx.capture("invoke-result", lambda: ctx.lam.invoke(FunctionName=name, InvocationType=kind))

    driver(LAMBDA, f"TestLambdaFeatures::test_invocation_type_no_return_payload[python-{kind}]")(run)


for _kind in ("RequestResponse", "Event"):
    _no_return_payload(_kind)


@driver(LAMBDA, "TestLambdaFeatures::test_invoke_exceptions")
def invoke_exceptions(ctx: Ctx) -> None:
    # The snapshot file holds this id twice; json keeps the later one, recorded with a qualifier.
    ctx.capture(
        "invoke_function_doesnotexist",
        lambda: ctx.lam.invoke(FunctionName="doesnotexist", Qualifier="$LATEST", Payload=b"{}"),
    )


@driver(LAMBDA, "TestLambdaErrors::test_lambda_handler_error")
def lambda_handler_error(ctx: Ctx) -> None:
    source = 'def handler(event, context):\n    raise Exception("Handler fails")\n'
    name = ctx.name()
    ctx.create(
        name=name,
        Handler="lambda_handler_error.handler",
        Code={"ZipFile": make_zip({"lambda_handler_error.py": source})},
    )
    ctx.capture("invocation_error", lambda: ctx.lam.invoke(FunctionName=name, Payload=b"{}"))


@driver(LAMBDA, "TestLambdaBaseFeatures::test_lambda_too_large_response")
def too_large_response(ctx: Ctx) -> None:
    # Over AWS's 6291556-byte (6 MiB + 100) response limit.
    source = "def handler(event, context):\n    return {'data': 'a' * (6 * 1024 * 1024 + 200)}\n"
    name = _invoke_fn(ctx, source)
    ctx.capture("invoke_result", lambda: ctx.lam.invoke(FunctionName=name, Payload=b"{}"))
    ctx.capture("invoke_result_2", lambda: ctx.lam.invoke(FunctionName=name, Payload=b"{}"))


@driver(LAMBDA, "TestLambdaBehavior::test_lambda_invoke_with_timeout")
def invoke_with_timeout(ctx: Ctx) -> None:
    source = "import time\n\ndef handler(event, context):\n    time.sleep(5)\n    return event\n"
    name = ctx.name()
    ctx.create(
        "create-result", name=name, wait=True, Timeout=1, Code={"ZipFile": make_zip({"handler.py": source})}
    )
    ctx.capture("invoke-result", lambda: ctx.lam.invoke(FunctionName=name, Payload=json.dumps({}).encode()))


@pytest.mark.parametrize(("drv", "entry"), list(params(__name__)))
def test_recorded(drv: Driver, entry: str, server: ServerProcess) -> None:
    check(drv, entry, server)
