"""Versions, aliases, event invoke configs and provisioned concurrency of test_lambda_api."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.harness import Ctx, Driver, check, driver, params
from tests.conformance.normalize import normalize
from tests.serverproc import ACCOUNT, ServerProcess, make_zip

API = "test_lambda_api"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
PY_ECHO_2 = make_zip({"handler.py": "def handler(event, context):\n    return {'v': 2, 'event': event}\n"})


def _fn(ctx: Ctx, entry: str | None = "create_response", **overrides: Any) -> str:
    """A function as LocalStack's alias/version tests create it (index.handler, no fixture extras)."""
    name = ctx.name()
    ctx.create(entry, name=name, fixture=False, Handler="index.handler", **overrides)
    return name


@driver(API, "TestLambdaVersions::test_version_lifecycle")
def version_lifecycle(ctx: Ctx) -> None:
    lam = ctx.lam
    name = _fn(ctx, Description="No version :(")
    ctx.capture("get_function_result", lambda: lam.get_function(FunctionName=name))
    ctx.capture("list_versions_result", lambda: lam.list_versions_by_function(FunctionName=name))
    ctx.capture(
        "first_update_response",
        lambda: lam.update_function_configuration(FunctionName=name, Description="First version :)"),
    )
    ctx.wait_active(name)
    ctx.capture("first_update_get_function", lambda: lam.get_function(FunctionName=name))
    ctx.capture(
        "first_publish_response",
        lambda: lam.publish_version(FunctionName=name, Description="First version description :)"),
    )
    ctx.capture("first_publish_get_function", lambda: lam.get_function(FunctionName=name, Qualifier="1"))
    ctx.capture(
        "first_publish_get_function_config",
        lambda: lam.get_function_configuration(FunctionName=name, Qualifier="1"),
    )
    ctx.capture(
        "second_update_response",
        lambda: lam.update_function_configuration(FunctionName=name, Description="Second version :))"),
    )
    ctx.wait_active(name)
    ctx.capture(
        "first_publish_get_function_after_update", lambda: lam.get_function(FunctionName=name, Qualifier="1")
    )
    ctx.capture("second_publish_response", lambda: lam.publish_version(FunctionName=name))
    ctx.capture("third_publish_response", lambda: lam.publish_version(FunctionName=name))
    ctx.capture(
        "list_versions_result_after_third_publish", lambda: lam.list_versions_by_function(FunctionName=name)
    )
    lam.delete_function(FunctionName=name, Qualifier="1")
    ctx.capture(
        "list_versions_result_after_deletion_of_first_version",
        lambda: lam.list_versions_by_function(FunctionName=name),
    )


@driver(API, "TestLambdaVersions::test_publish_with_update")
def publish_with_update(ctx: Ctx) -> None:
    lam = ctx.lam
    name = _fn(ctx)
    ctx.capture("get_function_result", lambda: lam.get_function(FunctionName=name))
    ctx.capture(
        "update_function_code_result",
        lambda: lam.update_function_code(FunctionName=name, ZipFile=PY_ECHO_2, Publish=True),
    )
    ctx.capture("get_function_version_result", lambda: lam.get_function(FunctionName=name, Qualifier="1"))
    ctx.capture(
        "get_function_latest_result", lambda: lam.get_function(FunctionName=name, Qualifier="$LATEST")
    )


def _two_versions(ctx: Ctx, **overrides: Any) -> str:
    name = _fn(ctx, Environment={"Variables": {"testenv": "staging"}}, **overrides)
    ctx.capture("publish_v1", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"testenv": "prod"}})
    ctx.wait_active(name)
    ctx.capture("publish_v2", lambda: ctx.lam.publish_version(FunctionName=name))
    return name


@driver(API, "TestLambdaAlias::test_alias_lifecycle")
def alias_lifecycle(ctx: Ctx) -> None:
    lam = ctx.lam
    name = _two_versions(ctx)

    def create(entry: str, alias: str, version: str, **kw: Any) -> None:
        ctx.capture(
            entry, lambda: lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version, **kw)
        )
        ctx.capture(entry.replace("create", "get"), lambda: lam.get_alias(FunctionName=name, Name=alias))

    weights = {"AdditionalVersionWeights": {"2": 0.2}}
    create("create_alias_1_1", "aliasname1_1", "1", Description="custom-alias", RoutingConfig=weights)
    # create() captured get_alias_1_1 already; the recording reads the function through the alias next.
    ctx.capture(
        "get_function_alias_1_1", lambda: lam.get_function(FunctionName=name, Qualifier="aliasname1_1")
    )
    ctx.capture(
        "get_function_byarn_alias_1_1", lambda: lam.get_function(FunctionName=f"{ARN}{name}:aliasname1_1")
    )
    ctx.capture(
        "get_function_alias_notfound_exc",
        lambda: lam.get_function(FunctionName=name, Qualifier="aliasdoesnotexist"),
    )
    ctx.capture(
        "get_function_alias_byarn_notfound_exc",
        lambda: lam.get_function(FunctionName=f"{ARN}{name}:aliasdoesnotexist"),
    )
    create("create_alias_1_2", "aliasname1_2", "1", Description="custom-alias")
    create("create_alias_1_3", "aliasname1_3", "1")
    create("create_alias_2", "aliasname2", "2", Description="custom-alias")
    # LocalStack snapshotted this first listing as the bare {"Aliases": [...]}.
    ctx.captured["list_aliases_for_fnname"] = normalize(
        {"Aliases": lam.list_aliases(FunctionName=name)["Aliases"]}
    )
    ctx.capture(
        "update_alias_1_1",
        lambda: lam.update_alias(
            FunctionName=name, Name="aliasname1_1", RoutingConfig={"AdditionalVersionWeights": {}}
        ),
    )
    ctx.capture("get_alias_1_1_after_update", lambda: lam.get_alias(FunctionName=name, Name="aliasname1_1"))
    ctx.capture("list_aliases_for_fnname_after_update", lambda: lam.list_aliases(FunctionName=name))
    ctx.capture(
        "update_alias_1_2",
        lambda: lam.update_alias(FunctionName=name, Name="aliasname1_2", FunctionVersion="1"),
    )
    ctx.capture("get_alias_1_2_after_update", lambda: lam.get_alias(FunctionName=name, Name="aliasname1_2"))
    ctx.capture("list_aliases_for_fnname_after_update_2", lambda: lam.list_aliases(FunctionName=name))
    ctx.capture("list_aliases_for_version", lambda: lam.list_aliases(FunctionName=name, FunctionVersion="1"))
    ctx.capture("delete_alias_response", lambda: lam.delete_alias(FunctionName=name, Name="aliasname1_1"))
    ctx.capture("list_aliases_for_fnname_afterdelete", lambda: lam.list_aliases(FunctionName=name))


@driver(API, "TestLambdaAlias::test_notfound_and_invalid_routingconfigs")
def notfound_and_invalid_routingconfigs(ctx: Ctx) -> None:
    name = _two_versions(ctx, Publish=True)  # recorded: created with Publish, so publish_v1 re-answers 1

    def create(entry: str, version: str = "1", weights: dict[str, float] | None = None, **kw: Any) -> None:
        args: dict[str, Any] = {"FunctionName": name, "Name": "custom", "FunctionVersion": version, **kw}
        if weights is not None:
            args["RoutingConfig"] = {"AdditionalVersionWeights": weights}
        ctx.capture(entry, lambda: ctx.raw.create_alias(**args))

    create("routing_config_exc_toomany", weights={"2": 0.5, "3": 0.5})
    create("routing_config_exc_toohigh", weights={"2": 2.0})
    create("routing_config_exc_subzero", weights={"2": -1.0})
    create("routing_config_exc_sameversion", weights={"1": 0.5})
    create("target_version_doesnotexist", version="10", weights={"2": 0.5})
    create("routing_config_exc_version_doesnotexist", weights={"10": 0.5})
    create("target_version_exc_version_latest", version="$LATEST", weights={"2": 0.5})
    create("routing_config_exc_version_latest", weights={"$LATEST": 0.5})
    create("create-alias-latest", version="$LATEST", Name="custom-latest")
    create("routing_config_exc_fn_doesnotexist", weights={"2": 0.5}, FunctionName=f"{name}-unknown")
    create("create_alias_empty_routingconfig", weights={}, Name="custom-empty-routingconfig")
    create("create_alias_response", weights={"2": 0.5})
    create("routing_config_exc_already_exist", weights={"2": 0.5})
    ctx.capture("alias_does_not_exist_esc", lambda: ctx.lam.get_alias(FunctionName=name, Name="non-existent"))


@driver(API, "TestLambdaAlias::test_alias_naming")
def alias_naming(ctx: Ctx) -> None:
    name = _fn(ctx, Environment={"Variables": {"testenv": "staging"}})
    ctx.capture("publish_v1", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.capture(
        "create_alias_date",
        lambda: ctx.lam.create_alias(
            FunctionName=name, Name="2024-01-02", FunctionVersion="1", Description="custom-alias"
        ),
    )
    ctx.capture("get_alias_date", lambda: ctx.lam.get_alias(FunctionName=name, Name="2024-01-02"))
    ctx.capture(
        "create_alias_number_exception",
        lambda: ctx.raw.create_alias(FunctionName=name, Name="2024", FunctionVersion="1"),
    )


# -- event invoke configs ----------------------------------------------------------------------------


@driver(API, "TestLambdaEventInvokeConfig::test_lambda_eventinvokeconfig_exceptions")
def eventinvokeconfig_exceptions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    other = ctx.name()
    ctx.create(name=other)
    alias = "eventinvokealias"
    arn = f"{ARN}{name}"
    ctx.capture("fn_version_result", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.capture(
        "fn_alias_result", lambda: ctx.lam.create_alias(FunctionName=name, Name=alias, FunctionVersion="1")
    )

    def put(entry: str, fn: str = name, **kw: Any) -> None:
        ctx.capture(entry, lambda: ctx.raw.put_function_event_invoke_config(FunctionName=fn, **kw))

    def dest(**kw: Any) -> dict[str, Any]:
        return {"DestinationConfig": kw}

    put("put_functionname_name_notfound", "doesnotexist", MaximumRetryAttempts=1)
    put("put_functionname_arn_notfound", f"{ARN}doesnotexist", MaximumRetryAttempts=1)
    put("put_functionname_nootherargs")
    put("put_destination_lambda_doesntexist", **dest(OnSuccess={"Destination": f"{ARN}doesnotexist"}))
    put("put_destination_recursive", **dest(OnSuccess={"Destination": arn}))
    put("put_destination_other_lambda", **dest(OnSuccess={"Destination": f"{ARN}{other}"}))
    iam = f"arn:aws:iam:us-east-1:{ACCOUNT}:function:{name}"
    put("put_destination_invalid_service_arn", **dest(OnSuccess={"Destination": iam}))
    put("put_destination_success_no_destination_arn", **dest(OnSuccess={}))
    put("put_destination_failure_no_destination_arn", **dest(OnFailure={}))
    bad = f"arn:aws:_-/!lambda:us-east-1:{ACCOUNT}:function:{name}"
    put("put_destination_invalid_arn_pattern", **dest(OnFailure={"Destination": bad}))
    put("put_destination_latest", MaximumRetryAttempts=1)
    put("put_destination_latest_explicit_qualifier", Qualifier="$LATEST", MaximumRetryAttempts=1)
    put("put_destination_version", Qualifier="1", MaximumRetryAttempts=1)
    put("put_alias_functionname_qualifier", Qualifier=alias, MaximumRetryAttempts=1)
    put("put_alias_doesnotexist", Qualifier="doesnotexist", MaximumRetryAttempts=1)
    put("put_alias_qualifiedarn", f"{arn}:{alias}", MaximumRetryAttempts=1)
    put("put_alias_qualifiedarn_qualifier", f"{arn}:{alias}", Qualifier=alias, MaximumRetryAttempts=1)
    put("put_alias_qualifiedarn_qualifierconflict", f"{arn}:{alias}", Qualifier="1", MaximumRetryAttempts=1)
    put("put_alias_shorthand", f"{name}:{alias}", MaximumRetryAttempts=1)
    put("put_alias_shorthand_qualifier", f"{name}:{alias}", Qualifier=alias, MaximumRetryAttempts=1)
    put("put_alias_shorthand_qualifierconflict", f"{name}:{alias}", Qualifier="1", MaximumRetryAttempts=1)
    put("put_version_shorthand", f"{name}:1", MaximumRetryAttempts=1)
    put("put_shorthand_qualifier_match", f"{name}:$LATEST", Qualifier="$LATEST", MaximumRetryAttempts=1)
    put("put_shorthand_qualifier_mismatch_1", f"{name}:$LATEST", Qualifier="1", MaximumRetryAttempts=1)
    put("put_shorthand_qualifier_mismatch_2", f"{name}:1", Qualifier="$LATEST", MaximumRetryAttempts=1)
    put("put_shorthand_qualifier_mismatch_3", f"{name}:1", Qualifier=alias, MaximumRetryAttempts=1)
    put("put_maxevent_maxvalue_result", MaximumRetryAttempts=2, MaximumEventAgeInSeconds=21600)
    put("put_pre_overwrite", MaximumRetryAttempts=2, MaximumEventAgeInSeconds=60)
    put("put_post_overwrite", MaximumRetryAttempts=0)
    put("second_overwrite_existing_response", MaximumRetryAttempts=0)
    ctx.capture("get_post_overwrite", lambda: ctx.lam.get_function_event_invoke_config(FunctionName=name))
    put("pre_update_response", MaximumRetryAttempts=2, MaximumEventAgeInSeconds=60)
    upd = ctx.lam.update_function_event_invoke_config
    ctx.capture("update_response", lambda: upd(FunctionName=name, MaximumRetryAttempts=0))
    ctx.capture("update_response_existing", lambda: upd(FunctionName=name, MaximumRetryAttempts=0))
    lst = ctx.lam.list_function_event_invoke_configs
    ctx.capture("list_configs", lambda: lst(FunctionName=name))
    delete = ctx.lam.delete_function_event_invoke_config
    ctx.capture("delete_latest", lambda: delete(FunctionName=name))
    ctx.capture("delete_version", lambda: delete(FunctionName=name, Qualifier="1"))
    ctx.capture("delete_alias", lambda: delete(FunctionName=name, Qualifier=alias))
    ctx.capture("list_configs_postdelete", lambda: lst(FunctionName=name))
    ctx.capture("delete_function_not_found", lambda: delete(FunctionName=name))
    ctx.capture("delete_function_doesnotexist", lambda: delete(FunctionName="doesnotexist"))
    ctx.capture("list_function_doesnotexist", lambda: lst(FunctionName="doesnotexist"))
    get = ctx.lam.get_function_event_invoke_config
    ctx.capture("get_function_doesnotexist", lambda: get(FunctionName="doesnotexist"))
    ctx.capture("get_qualifier_doesnotexist", lambda: get(FunctionName=name, Qualifier="doesnotexist"))
    ctx.capture(
        "update_eventinvokeconfig_function_doesnotexist",
        lambda: upd(FunctionName="doesnotexist", MaximumRetryAttempts=0),
    )
    ctx.capture("get_eventinvokeconfig_doesnotexist", lambda: get(FunctionName=name, Qualifier=alias))
    ctx.capture(
        "update_eventinvokeconfig_config_doesnotexist_with_qualifier",
        lambda: upd(FunctionName=name, Qualifier=alias, MaximumRetryAttempts=0),
    )
    ctx.capture(
        "update_eventinvokeconfig_config_doesnotexist_without_qualifier",
        lambda: upd(FunctionName=name, MaximumRetryAttempts=0),
    )


@driver(API, "TestLambdaEventInvokeConfig::test_lambda_eventinvokeconfig_lifecycle")
def eventinvokeconfig_lifecycle(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    put = ctx.lam.put_function_event_invoke_config
    upd = ctx.lam.update_function_event_invoke_config
    get = ctx.lam.get_function_event_invoke_config
    ctx.capture("put_invokeconfig_retries_0", lambda: put(FunctionName=name, MaximumRetryAttempts=0))
    ctx.capture("put_invokeconfig_eventage_60", lambda: put(FunctionName=name, MaximumEventAgeInSeconds=60))
    ctx.capture(
        "update_invokeconfig_eventage_nochange", lambda: upd(FunctionName=name, MaximumEventAgeInSeconds=60)
    )
    ctx.capture("update_invokeconfig_retries", lambda: upd(FunctionName=name, MaximumRetryAttempts=1))
    ctx.capture("get_invokeconfig", lambda: get(FunctionName=name))
    ctx.capture("get_invokeconfig_latest", lambda: get(FunctionName=name, Qualifier="$LATEST"))
    lst = ctx.lam.list_function_event_invoke_configs
    ctx.capture("list_single_invokeconfig", lambda: lst(FunctionName=name))
    ctx.capture("publish_version_result", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.capture("get_invokeconfig_postpublish", lambda: get(FunctionName=name, Qualifier="1"))
    ctx.capture(
        "put_published_invokeconfig",
        lambda: put(FunctionName=name, Qualifier="1", MaximumEventAgeInSeconds=120),
    )
    ctx.capture("get_published_invokeconfig", lambda: get(FunctionName=name, Qualifier="1"))
    ctx.lam.delete_function_event_invoke_config(FunctionName=name)
    ctx.capture("list_paging_nolimit_postdelete", lambda: lst(FunctionName=name))


# -- provisioned concurrency -------------------------------------------------------------------------


@driver(API, "TestLambdaProvisionedConcurrency::test_provisioned_concurrency_exceptions")
def provisioned_concurrency_exceptions(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    ctx.capture("publish_version_result", lambda: ctx.lam.publish_version(FunctionName=name))
    get = ctx.lam.get_provisioned_concurrency_config
    delete = ctx.lam.delete_provisioned_concurrency_config
    lst = ctx.lam.list_provisioned_concurrency_configs

    def put(entry: str, fn: str, qualifier: str, n: int = 1) -> None:
        ctx.capture(
            entry,
            lambda: ctx.raw.put_provisioned_concurrency_config(
                FunctionName=fn, Qualifier=qualifier, ProvisionedConcurrentExecutions=n
            ),
        )

    ctx.capture("get_provisioned_config_doesnotexist", lambda: get(FunctionName=name, Qualifier="1"))
    ctx.capture(
        "get_provisioned_functionname_doesnotexist",
        lambda: get(FunctionName="doesnotexist", Qualifier="noalias"),
    )
    ctx.capture("get_provisioned_qualifier_doesnotexist", lambda: get(FunctionName=name, Qualifier="noalias"))
    ctx.capture("get_provisioned_version_doesnotexist", lambda: get(FunctionName=name, Qualifier="10"))
    ctx.capture("get_provisioned_latest", lambda: get(FunctionName=name, Qualifier="$LATEST"))
    ctx.capture("list_provisioned_noconfigs", lambda: lst(FunctionName=name))
    ctx.capture("list_provisioned_functionname_doesnotexist", lambda: lst(FunctionName="doesnotexist"))
    ctx.capture(
        "delete_provisioned_functionname_doesnotexist",
        lambda: delete(FunctionName="doesnotexist", Qualifier="1"),
    )
    ctx.capture(
        "delete_provisioned_qualifier_doesnotexist", lambda: delete(FunctionName=name, Qualifier="noalias")
    )
    ctx.capture("delete_provisioned_version_doesnotexist", lambda: delete(FunctionName=name, Qualifier="10"))
    ctx.capture("delete_provisioned_latest", lambda: delete(FunctionName=name, Qualifier="$LATEST"))
    ctx.capture("delete_provisioned_config_doesnotexist", lambda: delete(FunctionName=name, Qualifier="1"))
    put("put_provisioned_invalid_param_0", name, "1", 0)
    put("put_provisioned_functionname_doesnotexist_alias", "doesnotexist", "noalias")
    put("put_provisioned_functionname_doesnotexist_version", "doesnotexist", "1")
    put("put_provisioned_qualifier_doesnotexist", name, "doesnotexist")
    put("put_provisioned_version_doesnotexist", name, "10")
    put("put_provisioned_latest", name, "$LATEST")


@driver(API, "TestLambdaProvisionedConcurrency::test_lambda_provisioned_lifecycle")
def provisioned_lifecycle(ctx: Ctx) -> None:
    name = ctx.name()
    ctx.create(name=name)
    alias = ctx.name("alias")
    ctx.capture("publish_version_result", lambda: ctx.lam.publish_version(FunctionName=name))
    ctx.capture(
        "create_alias_result",
        lambda: ctx.lam.create_alias(FunctionName=name, Name=alias, FunctionVersion="1"),
    )

    def put(entry: str, qualifier: str) -> None:
        ctx.capture(
            entry,
            lambda: ctx.lam.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=1
            ),
        )

    put("put_provisioned_on_version", "1")
    put("put_provisioned_on_alias_versionconflict", alias)
    ctx.capture(
        "delete_provisioned_version",
        lambda: ctx.lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1"),
    )
    get = ctx.lam.get_provisioned_concurrency_config
    ctx.capture("get_provisioned_version_postdelete", lambda: get(FunctionName=name, Qualifier="1"))
    put("put_provisioned_on_alias", alias)
    put("put_provisioned_on_version_conflict", "1")
    ctx.capture("delete_alias_result", lambda: ctx.lam.delete_alias(FunctionName=name, Name=alias))
    ctx.capture("get_provisioned_alias_postaliasdelete", lambda: get(FunctionName=name, Qualifier=alias))
    ctx.capture(
        "list_response_postdeletes", lambda: ctx.lam.list_provisioned_concurrency_configs(FunctionName=name)
    )


@pytest.mark.parametrize(("drv", "entry"), list(params(__name__)))
def test_recorded(drv: Driver, entry: str, server: ServerProcess) -> None:
    check(drv, entry, server)
