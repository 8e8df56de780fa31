"""The CloudWatch metrics API and /metrics against a real server, through boto3 and the AWS CLI.

botocore speaks smithy-rpc-v2-cbor to CloudWatch; the json and query protocols (older SDKs) are
driven by the same client with its serializer swapped.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import botocore.serialize
import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import PY_ECHO, ServerProcess

NS = "AWS/Lambda"
NOW = dt.datetime.now(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _window(minutes: int = 10) -> dict[str, dt.datetime]:
    now = _now()
    return {"StartTime": now - dt.timedelta(minutes=minutes), "EndTime": now + dt.timedelta(minutes=1)}


def _client_on(server: ServerProcess, protocol: str) -> Any:
    """A cloudwatch client speaking ``protocol`` (json or query) instead of rpc-v2-cbor."""
    client = server.client("cloudwatch")
    client.meta.service_model.__dict__["resolved_protocol"] = protocol
    client._serializer = botocore.serialize.create_serializer(protocol, include_validation=True)
    return client


@pytest.fixture(scope="module")
def cw(server: ServerProcess) -> Any:
    return server.client("cloudwatch")


def _fn_stats(cw: Any, metric: str, function: str, stats: list[str], **extra: Any) -> list[dict[str, Any]]:
    answer = cw.get_metric_statistics(
        Namespace=NS,
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Period=60,
        Statistics=stats,
        **_window(),
        **extra,
    )
    points: list[dict[str, Any]] = answer["Datapoints"]
    return points


# --- the API surface, no invokes needed --------------------------------------------------------


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json", "query"])
def test_unknown_metric_has_no_data(server: ServerProcess, protocol: str) -> None:
    cw = server.client("cloudwatch") if protocol == "smithy-rpc-v2-cbor" else _client_on(server, protocol)
    answer = cw.get_metric_statistics(
        Namespace=NS,
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": "no-such-function"}],
        Period=60,
        Statistics=["Sum", "Average"],
        **_window(),
    )
    assert answer["Datapoints"] == []
    assert answer["Label"] == "Invocations"
    data = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {"Namespace": "Nope/Nope", "MetricName": "X"},
                    "Period": 300,
                    "Stat": "p99",
                },
            }
        ],
        **_window(),
    )
    [result] = data["MetricDataResults"]
    assert (result["Id"], result["Label"], result["StatusCode"]) == ("m1", "X", "Complete")
    assert result["Timestamps"] == [] and result["Values"] == []
    assert cw.list_metrics(Namespace="Nope/Nope")["Metrics"] == []


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json", "query"])
@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"Period": 90}, "InvalidParameterValue", "The parameter Period must be a multiple of 60."),
        (
            {"Period": 60, "Statistics": None},
            "InvalidParameterCombination",
            "Must specify either Statistics or ExtendedStatistics",
        ),
        (
            {"StartTime": _now(), "EndTime": _now() - dt.timedelta(hours=1)},
            "InvalidParameterValue",
            "The parameter StartTime must be less than the parameter EndTime.",
        ),
        (
            {"Period": 60, "StartTime": NOW - dt.timedelta(days=2), "EndTime": NOW},
            "InvalidParameterCombination",
            "You have requested up to 2,880 datapoints, which exceeds the limit of 1,440. "
            "You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
        ),
        ({"ExtendedStatistics": ["p101"], "Statistics": None}, "InvalidParameterValue", "p101"),
    ],
)
def test_get_metric_statistics_validation(
    server: ServerProcess, protocol: str, overrides: dict[str, Any], code: str, message: str
) -> None:
    cw = server.client("cloudwatch") if protocol == "smithy-rpc-v2-cbor" else _client_on(server, protocol)
    kwargs: dict[str, Any] = {
        "Namespace": NS,
        "MetricName": "Invocations",
        "Period": 60,
        "Statistics": ["Sum"],
    }
    kwargs.update(_window())
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with pytest.raises(ClientError) as caught:
        cw.get_metric_statistics(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == code
    assert message in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_modeled_exception_classes(cw: Any) -> None:
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.get_metric_statistics(Namespace=NS, MetricName="Errors", Period=7, Statistics=["Sum"], **_window())


def test_get_metric_data_validation(cw: Any) -> None:
    with pytest.raises(ClientError) as caught:
        cw.get_metric_data(MetricDataQueries=[{"Id": "e1", "Expression": "m1 * 2"}], **_window())
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "not supported" in caught.value.response["Error"]["Message"]
    stat = {"Metric": {"Namespace": NS, "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}
    with pytest.raises(ClientError) as caught:
        cw.get_metric_data(
            MetricDataQueries=[{"Id": "a", "MetricStat": stat}, {"Id": "a", "MetricStat": stat}], **_window()
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as caught:
        cw.get_metric_data(
            MetricDataQueries=[{"Id": "a", "MetricStat": stat}], NextToken="garbage", **_window()
        )
    assert caught.value.response["Error"]["Code"] == "InvalidNextToken"


def test_unsigned_request_is_refused(server: ServerProcess) -> None:
    request = urllib.request.Request(
        server.endpoint + "/service/GraniteServiceVersion20100801/operation/ListMetrics",
        data=b"\xa0",
        headers={"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 403


def test_aws_cli_get_metric_statistics(server: ServerProcess) -> None:
    window = _window()
    done = server.aws_cli(
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        NS,
        "--metric-name",
        "Duration",
        "--dimensions",
        "Name=FunctionName,Value=absent-fn",
        "--start-time",
        window["StartTime"].isoformat(),
        "--end-time",
        window["EndTime"].isoformat(),
        "--period",
        "300",
        "--statistics",
        "Average",
        "Maximum",
        "--extended-statistics",
        "p99",
    )
    assert json.loads(done.stdout) == {"Label": "Duration", "Datapoints": []}
    bad = server.aws_cli(
        "cloudwatch",
        "get-metric-statistics",
        "--namespace",
        NS,
        "--metric-name",
        "Duration",
        "--start-time",
        window["StartTime"].isoformat(),
        "--end-time",
        window["EndTime"].isoformat(),
        "--period",
        "45",
        "--statistics",
        "Sum",
        check=False,
    )
    assert bad.returncode != 0
    assert "InvalidParameterValue" in bad.stderr


def test_prometheus_text_parses(server: ServerProcess) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    names = {family.name for family in parser.text_string_to_metric_families(text)}
    assert {"lambdad_invocations", "lambdad_errors", "lambdad_throttles", "lambdad_duration_seconds"} <= names
    assert "lambdad_concurrent_executions" in names


# --- numbers that agree with the invocations a test caused -------------------------------------


def _invoke_available(server: ServerProcess, lam: Any, name: str) -> bool:
    try:
        lam.invoke(FunctionName=name, Payload=b"{}", InvocationType="DryRun")  # DryRun counts in no metric
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "UnknownOperationException":
            return False
        raise
    return True


@pytest.fixture
def invoked_function(server: ServerProcess, lam: Any, fn_name: str) -> Iterator[str]:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name)
    if not _invoke_available(server, lam, fn_name):
        lam.delete_function(FunctionName=fn_name)
        pytest.skip("Invoke is not served by this build yet (UnknownOperationException)")
    yield fn_name
    lam.delete_function(FunctionName=fn_name)


def _eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_metrics_agree_with_invocations(
    server: ServerProcess, lam: Any, cw: Any, invoked_function: str
) -> None:
    name = invoked_function
    answers = [lam.invoke(FunctionName=name, Payload=json.dumps({"i": i}).encode()) for i in range(5)]
    failed = sum(1 for answer in answers if "FunctionError" in answer)

    def counted() -> None:
        points = _fn_stats(cw, "Invocations", name, ["Sum"])
        assert sum(p["Sum"] for p in points) == 5
        errors = _fn_stats(cw, "Errors", name, ["Sum", "SampleCount"])
        assert sum(p["Sum"] for p in errors) == failed
        assert sum(p["SampleCount"] for p in errors) == 5

    _eventually(counted)
    durations = _fn_stats(cw, "Duration", name, ["Minimum", "Maximum", "Average"])
    assert durations and all(p["Unit"] == "Milliseconds" for p in durations)
    assert all(0 <= p["Minimum"] <= p["Average"] <= p["Maximum"] for p in durations)
    listed = cw.list_metrics(Namespace=NS, Dimensions=[{"Name": "FunctionName", "Value": name}])["Metrics"]
    assert {"Invocations", "Errors", "Duration"} <= {m["MetricName"] for m in listed}
    data = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "inv",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NS,
                        "MetricName": "Invocations",
                        "Dimensions": [{"Name": "FunctionName", "Value": name}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
                "Label": "calls",
            }
        ],
        **_window(),
    )
    [result] = data["MetricDataResults"]
    assert result["Label"] == "calls" and sum(result["Values"]) == 5
    assert result["Timestamps"] == sorted(result["Timestamps"], reverse=True)
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert f'lambdad_invocations_total{{function="{name}"}} 5' in text
