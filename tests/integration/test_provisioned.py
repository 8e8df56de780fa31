"""Provisioned concurrency through boto3: config lifecycle, environments warm before the first invoke."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.integration.test_functions_api import error_of, wait_active
from tests.integration.test_versions_aliases import arn
from tests.serverproc import PY_ECHO, make_zip

needs_bwrap = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

INIT_TYPE = make_zip(
    {
        "handler.py": "import os\ndef handler(event, context):\n"
        "    return os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']\n"
    }
)


def published(lam: Any, name: str, code: bytes = PY_ECHO) -> None:
    lam.create_function(**create_kwargs(name, code))
    wait_active(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "1"


def wait_ready(lam: Any, name: str, qualifier: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if config["Status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return dict(config)
        time.sleep(0.1)


@needs_bwrap
def test_ready_before_the_first_invoke_which_is_warm(lam: Any, fn_name: str) -> None:
    published(lam, fn_name, INIT_TYPE)
    put = lam.put_provisioned_concurrency_config(
        FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    assert put["Status"] == "IN_PROGRESS" and put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0
    ready = wait_ready(lam, fn_name, "1")
    assert ready["Status"] == "READY", ready
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    response = lam.invoke(FunctionName=fn_name, Qualifier="1", LogType="Tail")
    assert json.loads(response["Payload"].read()) == "provisioned-concurrency"
    log = base64.b64decode(response["LogResult"]).decode()
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    assert "Init Duration" not in report
    listed = lam.list_provisioned_concurrency_configs(FunctionName=fn_name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn(fn_name, "1")]
    lam.delete_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="1")
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="1")
    assert error_of(exc) == (
        "ProvisionedConcurrencyConfigNotFoundException",
        404,
        "No Provisioned Concurrency Config found for this function",
    )
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=fn_name)["ProvisionedConcurrencyConfigs"] == []
    )


def test_provisioned_errors(lam: Any, lam_unchecked: Any, fn_name: str) -> None:
    published(lam, fn_name)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
    )
    for call in (lam.get_provisioned_concurrency_config, lam.delete_provisioned_concurrency_config):
        with pytest.raises(ClientError) as exc:
            call(FunctionName=fn_name, Qualifier="$LATEST")
        assert error_of(exc)[2] == "The function resource provided must be an alias or a published version."
        with pytest.raises(ClientError) as exc:
            call(FunctionName=fn_name, Qualifier="10")
        assert error_of(exc) == (
            "ResourceNotFoundException",
            404,
            f"Function not found: {arn(fn_name, '10')}",
        )
        with pytest.raises(ClientError) as exc:
            call(FunctionName="doesnotexist", Qualifier="noalias")
        assert error_of(exc)[2] == f"Cannot find alias arn: {arn('doesnotexist', 'noalias')}"
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="1")
    assert error_of(exc)[0] == "ProvisionedConcurrencyConfigNotFoundException"
    lam.delete_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="1")  # nothing to delete: fine
    with pytest.raises(ClientError) as exc:
        lam.list_provisioned_concurrency_configs(FunctionName="doesnotexist")
    assert error_of(exc)[2] == f"Function not found: {arn('doesnotexist')}"
    with pytest.raises(ClientError) as exc:
        lam_unchecked.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=0
        )
    assert error_of(exc)[0] == "ValidationException"

    lam.put_function_concurrency(FunctionName=fn_name, ReservedConcurrentExecutions=1)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
    assert error_of(exc)[0] == "InvalidParameterValueException"
    lam.delete_function_concurrency(FunctionName=fn_name)
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=100_000
        )
    assert "greater than account's unreserved concurrency" in error_of(exc)[2]


def test_version_and_alias_conflicts(lam: Any, fn_name: str) -> None:
    published(lam, fn_name)
    lam.create_alias(FunctionName=fn_name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="live", ProvisionedConcurrentExecutions=1
        )
    assert error_of(exc) == (
        "ResourceConflictException",
        409,
        "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version",
    )
    lam.delete_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=fn_name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=fn_name, Qualifier="1", ProvisionedConcurrentExecutions=1
        )
    assert error_of(exc)[2] == "Version is pointed by a Provisioned Concurrency alias"
    lam.delete_alias(FunctionName=fn_name, Name="live")
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=fn_name, Qualifier="live")
    assert error_of(exc)[2] == f"Cannot find alias arn: {arn(fn_name, 'live')}"
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=fn_name)["ProvisionedConcurrencyConfigs"] == []
    )


def test_provisioned_and_alias_invocations_are_metered(server: Any, lam: Any) -> None:
    """Invocations on a provisioned alias count as ProvisionedConcurrencyInvocations with Resource."""
    import datetime as dt

    name = f"pcm-{uuid.uuid4().hex[:8]}"
    lam.create_function(**create_kwargs(name, PY_ECHO))
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    deadline = time.monotonic() + 60
    while lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] != "READY":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for _ in range(3):
        lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
    cw = server.client("cloudwatch")
    now = dt.datetime.now(dt.UTC)
    stats = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="ProvisionedConcurrencyInvocations",
        Dimensions=[{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:live"}],
        StartTime=now - dt.timedelta(minutes=5),
        EndTime=now + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )
    assert sum(p["Sum"] for p in stats["Datapoints"]) == 3
    invocations = cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:live"}],
        StartTime=now - dt.timedelta(minutes=5),
        EndTime=now + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )
    assert sum(p["Sum"] for p in invocations["Datapoints"]) == 3
