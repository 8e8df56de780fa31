"""Resource-based policies through boto3: AddPermission, RemovePermission, GetPolicy and their errors."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.integration.test_functions_api import error_of, wait_active
from tests.serverproc import ACCOUNT, PY_ECHO, REGION

S3_ARN = "arn:aws:s3:::some-bucket"


def arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def test_add_get_remove_permission(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    wait_active(lam, fn_name)
    added = lam.add_permission(
        FunctionName=fn_name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=S3_ARN,
    )
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "s3",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": arn(fn_name),
        "Condition": {"ArnLike": {"AWS:SourceArn": S3_ARN}},
    }
    policy = lam.get_policy(FunctionName=fn_name)
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": [json.loads(added["Statement"])],
    }
    assert policy["RevisionId"] == lam.get_function(FunctionName=fn_name)["Configuration"]["RevisionId"]

    url = lam.add_permission(
        FunctionName=fn_name,
        StatementId="urlPermission",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        SourceArn=S3_ARN,
        SourceAccount=ACCOUNT,
        PrincipalOrgID="o-1234567890",
        FunctionUrlAuthType="NONE",
        RevisionId=policy["RevisionId"],
    )
    assert json.loads(url["Statement"])["Condition"] == {
        "StringEquals": {
            "AWS:SourceAccount": ACCOUNT,
            "lambda:FunctionUrlAuthType": "NONE",
            "aws:PrincipalOrgID": "o-1234567890",
        },
        "ArnLike": {"AWS:SourceArn": S3_ARN},
    }
    account = lam.add_permission(
        FunctionName=fn_name, StatementId="acct", Action="lambda:InvokeFunction", Principal=ACCOUNT
    )
    assert json.loads(account["Statement"])["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}

    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name, StatementId="s3", Action="lambda:InvokeFunction", Principal="*"
        )
    assert error_of(exc) == (
        "ResourceConflictException",
        409,
        "The statement id (s3) provided already exists. Please provide a new statement id, or remove the existing statement.",
    )
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="*",
            RevisionId=str(uuid.uuid4()),
        )
    assert error_of(exc)[:2] == ("PreconditionFailedException", 412)
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="invalid-principal",
        )
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        "The provided principal was invalid. Please check the principal and try again.",
    )
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="*",
            Qualifier="$LATEST",
        )
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        "We currently do not support adding policies for $LATEST.",
    )
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="*",
            Qualifier="42",
        )
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn(fn_name, '42')}")
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn_name,
            StatementId="x",
            Action="lambda:InvokeFunction",
            Principal="*",
            Qualifier="nope",
        )
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        f"Cannot find alias arn: {arn(fn_name, 'nope')}",
    )
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName="doesnotexist", StatementId="x", Action="lambda:InvokeFunction", Principal="*"
        )
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn('doesnotexist')}")

    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=fn_name, StatementId="non-existent")
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        "Statement non-existent is not found in resource policy.",
    )
    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName="doesnotexist", StatementId="s3")
    assert error_of(exc) == ("ResourceNotFoundException", 404, f"No policy found for: {arn('doesnotexist')}")
    for sid in ("s3", "urlPermission", "acct"):
        assert (
            lam.remove_permission(FunctionName=fn_name, StatementId=sid)["ResponseMetadata"]["HTTPStatusCode"]
            == 204
        )
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn_name)
    assert error_of(exc) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=fn_name, StatementId="s3")
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        "No policy is associated with the given resource.",
    )
    lam.delete_function(FunctionName=fn_name)


def test_policies_per_version_and_alias(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    wait_active(lam, fn_name)
    lam.publish_version(FunctionName=fn_name)
    lam.create_alias(FunctionName=fn_name, Name="live", FunctionVersion="1")
    lam.add_permission(
        FunctionName=fn_name, StatementId="v1", Action="lambda:InvokeFunction", Principal="*", Qualifier="1"
    )
    alias_stmt = lam.add_permission(
        FunctionName=f"{fn_name}:live", StatementId="al", Action="lambda:InvokeFunction", Principal="*"
    )
    assert json.loads(alias_stmt["Statement"])["Resource"] == arn(fn_name, "live")
    v1 = json.loads(lam.get_policy(FunctionName=fn_name, Qualifier="1")["Policy"])
    assert [s["Sid"] for s in v1["Statement"]] == ["v1"] and v1["Statement"][0]["Resource"] == arn(
        fn_name, "1"
    )
    alias_policy = lam.get_policy(FunctionName=fn_name, Qualifier="live")
    assert alias_policy["RevisionId"] == lam.get_alias(FunctionName=fn_name, Name="live")["RevisionId"]
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn_name)
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    lam.delete_function(FunctionName=fn_name)
