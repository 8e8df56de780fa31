"""Versions and aliases through boto3 and the AWS CLI: lifecycle, qualifiers, errors, traffic splitting."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.integration.test_functions_api import error_of, wait_active
from tests.serverproc import ACCOUNT, PY_ECHO, REGION, ServerProcess, make_zip

needs_bwrap = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")


def version_zip(tag: str) -> bytes:
    source = f"import os\ndef handler(event, context):\n    return {{'tag': '{tag}', 'version': context.function_version, 'arn': context.invoked_function_arn}}\n"
    return make_zip({"handler.py": source})


def arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def two_versions(lam: Any, name: str) -> None:
    lam.create_function(**create_kwargs(name, version_zip("one")))
    wait_active(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=version_zip("two"))
    wait_updated(lam, name)
    assert lam.publish_version(FunctionName=name, Description="second")["Version"] == "2"


def test_publish_list_get_and_delete_versions(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO, Description="No version"))
    latest = wait_active(lam, fn_name)
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=fn_name, RevisionId=str(uuid.uuid4()))
    assert error_of(exc)[:2] == ("PreconditionFailedException", 412)
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=fn_name, CodeSha256="somenonexistentsha256")
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        f"CodeSHA256 (somenonexistentsha256) is different from current CodeSHA256 in $LATEST "
        f"({latest['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST.",
    )

    first = lam.publish_version(FunctionName=fn_name, Description="first", RevisionId=latest["RevisionId"])
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (first["Version"], first["FunctionArn"], first["Description"]) == ("1", arn(fn_name, "1"), "first")
    assert first["State"] == "Active" and first["LastUpdateStatus"] == "Successful"
    again = lam.publish_version(FunctionName=fn_name)
    assert again["Version"] == "1" and again["RevisionId"] == first["RevisionId"]

    got = lam.get_function(FunctionName=fn_name, Qualifier="1")["Configuration"]
    assert got["FunctionArn"] == arn(fn_name, "1") and got["Version"] == "1"
    assert lam.get_function_configuration(FunctionName=f"{fn_name}:1")["Version"] == "1"
    assert lam.get_function_configuration(FunctionName=arn(fn_name, "1"))["Version"] == "1"
    assert lam.get_function(FunctionName=fn_name, Qualifier="$LATEST")["Configuration"]["FunctionArn"] == arn(
        fn_name, "$LATEST"
    )
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name, Qualifier="7")
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn(fn_name, '7')}")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"{fn_name}:1", Qualifier="2")
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)

    lam.update_function_configuration(FunctionName=fn_name, Description="changed")
    wait_updated(lam, fn_name)
    assert lam.publish_version(FunctionName=fn_name)["Version"] == "2"
    listed = lam.list_versions_by_function(FunctionName=fn_name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2"]
    assert listed[0]["FunctionArn"] == arn(fn_name, "$LATEST")
    assert "State" not in listed[1] and "RuntimeVersionConfig" not in listed[1]
    page = lam.list_versions_by_function(FunctionName=fn_name, MaxItems=2)
    assert [v["Version"] for v in page["Versions"]] == ["$LATEST", "1"]
    rest = lam.list_versions_by_function(FunctionName=fn_name, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"] and "NextMarker" not in rest

    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=fn_name, Qualifier="$LATEST")
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    lam.delete_function(FunctionName=fn_name, Qualifier="1")
    versions = lam.list_versions_by_function(FunctionName=fn_name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "2"]
    # Numbers are never reused.
    lam.update_function_configuration(FunctionName=fn_name, Description="third")
    wait_updated(lam, fn_name)
    assert lam.publish_version(FunctionName=fn_name)["Version"] == "3"
    lam.delete_function(FunctionName=fn_name)
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name, Qualifier="2")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def test_publish_on_create_and_on_update_code(lam: Any, fn_name: str) -> None:
    created = lam.create_function(**create_kwargs(fn_name, PY_ECHO, Publish=True))
    assert created["Version"] == "1", "AWS answers with the published version's number"
    wait_active(lam, fn_name)
    lam.get_waiter("function_active_v2").wait(
        FunctionName=fn_name, Qualifier="1", WaiterConfig={"Delay": 0.1}
    )
    assert lam.get_function_configuration(FunctionName=fn_name, Qualifier="1")["State"] == "Active"
    updated = lam.update_function_code(FunctionName=fn_name, ZipFile=version_zip("x"), Publish=True)
    assert updated["Version"] == "2" and updated["FunctionArn"] == arn(fn_name, "2")
    lam.get_waiter("function_active_v2").wait(
        FunctionName=fn_name, Qualifier="2", WaiterConfig={"Delay": 0.1}
    )
    lam.delete_function(FunctionName=fn_name)


def test_alias_lifecycle_and_errors(lam: Any, lam_unchecked: Any, fn_name: str) -> None:
    two_versions(lam, fn_name)
    created = lam.create_alias(
        FunctionName=fn_name,
        Name="live",
        FunctionVersion="1",
        Description="custom-alias",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    expected = {
        "AliasArn": arn(fn_name, "live"),
        "Description": "custom-alias",
        "FunctionVersion": "1",
        "Name": "live",
        "RevisionId": created["RevisionId"],
        "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.2}},
    }
    assert {k: v for k, v in created.items() if k != "ResponseMetadata"} == expected
    got = lam.get_alias(FunctionName=fn_name, Name="live")
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == expected
    conf = lam.get_function(FunctionName=fn_name, Qualifier="live")["Configuration"]
    assert conf["FunctionArn"] == arn(fn_name, "live") and conf["Version"] == "1"

    plain = lam.create_alias(FunctionName=fn_name, Name="plain", FunctionVersion="2", RoutingConfig={})
    assert "RoutingConfig" not in plain and plain["Description"] == ""
    names = [a["Name"] for a in lam.list_aliases(FunctionName=fn_name)["Aliases"]]
    assert names == ["live", "plain"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=fn_name, FunctionVersion="2")["Aliases"]] == [
        "plain"
    ]

    updated = lam.update_alias(FunctionName=fn_name, Name="live", RoutingConfig={})
    assert "RoutingConfig" not in updated and updated["RevisionId"] != created["RevisionId"]
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=fn_name, Name="live", RevisionId=created["RevisionId"])
    assert error_of(exc)[:2] == ("PreconditionFailedException", 412)

    cases: list[tuple[dict[str, Any], tuple[str, int, str]]] = [
        (
            {"Name": "live", "FunctionVersion": "1"},
            ("ResourceConflictException", 409, f"Alias already exists: {arn(fn_name, 'live')}"),
        ),
        (
            {"Name": "x1", "FunctionVersion": "10"},
            ("ResourceNotFoundException", 404, f"Function not found: {arn(fn_name, '10')}"),
        ),
        (
            {"Name": "x2", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}}},
            (
                "InvalidParameterValueException",
                400,
                "Invalid function version 1. Function version 1 is already included in routing configuration.",
            ),
        ),
        (
            {
                "Name": "x3",
                "FunctionVersion": "1",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5, "3": 0.1}},
            },
            (
                "InvalidParameterValueException",
                400,
                "Number of items in AdditionalVersionWeights cannot be greater than 1",
            ),
        ),
        (
            {
                "Name": "x4",
                "FunctionVersion": "$LATEST",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}},
            },
            (
                "InvalidParameterValueException",
                400,
                "$LATEST is not supported for an alias pointing to more than 1 version",
            ),
        ),
        (
            {"Name": "x5", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 2.0}}},
            ("ValidationException", 400, "1 validation error detected"),
        ),
    ]
    for kwargs, (code, status, message) in cases:
        with pytest.raises(ClientError) as exc:
            lam_unchecked.create_alias(FunctionName=fn_name, **kwargs)
        got_code, got_status, got_message = error_of(exc)
        assert (got_code, got_status) == (code, status), kwargs
        assert got_message.startswith(message), got_message

    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName=fn_name, Name="nope")
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        f"Cannot find alias arn: {arn(fn_name, 'nope')}",
    )
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=fn_name, Name="nope", FunctionVersion="1")
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Alias not found: {arn(fn_name, 'nope')}")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name, Qualifier="nope")
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn(fn_name, 'nope')}")
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=fn_name, Qualifier="2")
    assert error_of(exc)[:2] == ("ResourceConflictException", 409)
    assert lam.delete_alias(FunctionName=fn_name, Name="nope")["ResponseMetadata"]["HTTPStatusCode"] == 204
    lam.delete_alias(FunctionName=fn_name, Name="plain")
    lam.delete_function(FunctionName=fn_name, Qualifier="2")
    lam.delete_function(FunctionName=fn_name)


def test_aws_cli_publish_and_alias(server: ServerProcess, lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    wait_active(lam, fn_name)
    out = json.loads(server.aws_cli("lambda", "publish-version", "--function-name", fn_name).stdout)
    assert out["Version"] == "1"
    cli = server.aws_cli(
        "lambda", "create-alias", "--function-name", fn_name, "--name", "prod", "--function-version", "1"
    )
    assert json.loads(cli.stdout)["AliasArn"] == arn(fn_name, "prod")
    lam.delete_function(FunctionName=fn_name)


@needs_bwrap
def test_invoke_qualifiers_and_weighted_alias(lam: Any, fn_name: str) -> None:
    two_versions(lam, fn_name)
    for qualifier, tag in (("1", "one"), ("2", "two"), ("$LATEST", "two")):
        response = lam.invoke(FunctionName=fn_name, Qualifier=qualifier)
        body = json.loads(response["Payload"].read())
        assert response["ExecutedVersion"] == qualifier and body["tag"] == tag
        assert body["version"] == qualifier
    response = lam.invoke(FunctionName=f"{fn_name}:1")
    assert response["ExecutedVersion"] == "1"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=fn_name, Qualifier="9")
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn(fn_name, '9')}")

    lam.create_alias(
        FunctionName=fn_name,
        Name="split",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    seen: Counter[str] = Counter()
    for _ in range(200):
        response = lam.invoke(FunctionName=fn_name, Qualifier="split")
        body = json.loads(response["Payload"].read())
        assert body["arn"] == arn(fn_name, "split")
        assert body["version"] == response["ExecutedVersion"]
        seen[response["ExecutedVersion"]] += 1
    assert set(seen) == {"1", "2"}
    # 0.3 of 200 is 60, with a standard deviation of about 6.5: this band is over 4 deviations wide.
    assert 30 <= seen["2"] <= 90, seen
    lam.update_alias(FunctionName=fn_name, Name="split", RoutingConfig={})
    for _ in range(10):
        assert lam.invoke(FunctionName=fn_name, Qualifier="split")["ExecutedVersion"] == "1"
    lam.delete_function(FunctionName=fn_name)
