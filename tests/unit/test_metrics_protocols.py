"""Statistics, query-protocol decoding and XML rendering, CBOR encoding, and the /metrics guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cbor2
import pytest

from lambdad.http import awsmodel, query, rpc
from lambdad.http.app import Request
from lambdad.http.errors import InvalidParameterValue
from lambdad.observe import cloudwatch_api as cw
from lambdad.observe.metrics import Agg, MetricStore, bucket_index
from lambdad.observe.prometheus import PrometheusEndpoint, render

OPS = awsmodel.build_operations(awsmodel.load_model("cloudwatch"), set(cw.OPERATIONS))


def _request(client: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Request:
    return Request("GET", "/metrics", b"/metrics", b"", headers or {}, [], b"", "rid", client=(client, 1234))


@pytest.mark.parametrize(
    ("period", "ok"), [(60, True), (300, True), (1, True), (30, True), (90, False), (7, False), (0, False)]
)
def test_period_rules(period: int, ok: bool) -> None:
    if ok:
        assert cw.check_period(period) == period
    else:
        with pytest.raises(InvalidParameterValue):
            cw.check_period(period)


def test_statistics_of_an_aggregate() -> None:
    agg = Agg()
    for v in (1.0, 2.0, 3.0, 10.0):
        agg.add(v, bucket_index(v))
    assert [cw.statistic(agg, s) for s in cw.BASIC_STATISTICS] == [4.0, 4.0, 16.0, 1.0, 10.0]
    assert cw.statistic(agg, "p100") == 10.0
    assert cw.percentile_of("p99.9") == 99.9
    assert cw.percentile_of("p101") is None and cw.percentile_of("tm99") is None


def test_epoch_accepts_every_encoding() -> None:
    import datetime as dt

    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert cw.epoch(when, "T") == cw.epoch(when.timestamp(), "T") == cw.epoch("2024-01-02T03:04:05Z", "T")
    with pytest.raises(InvalidParameterValue):
        cw.epoch("yesterday", "StartTime")


def test_query_decoding_by_shape() -> None:
    op = OPS["GetMetricData"]
    flat = {
        "MetricDataQueries.member.1.Id": "m1",
        "MetricDataQueries.member.1.MetricStat.Metric.Namespace": "AWS/Lambda",
        "MetricDataQueries.member.1.MetricStat.Metric.MetricName": "Errors",
        "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.2.Name": "B",
        "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.2.Value": "b",
        "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name": "A",
        "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value": "a",
        "MetricDataQueries.member.1.MetricStat.Period": "60",
        "MetricDataQueries.member.1.ReturnData": "false",
        "MaxDatapoints": "10",
    }
    assert op.input_shape is not None
    params = query.decode(query._tree(flat), op.input_shape, op.shapes, "")
    [q] = params["MetricDataQueries"]
    assert q["MetricStat"]["Period"] == 60 and q["ReturnData"] is False and params["MaxDatapoints"] == 10
    assert q["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "A", "Value": "a"},
        {"Name": "B", "Value": "b"},
    ]


def test_query_xml_rendering() -> None:
    op = OPS["GetMetricStatistics"]
    result = {
        "Label": "Duration",
        "Datapoints": [
            {"Timestamp": 0.0, "Maximum": 2, "Unit": "Milliseconds", "ExtendedStatistics": {"p99": 1.5}}
        ],
    }
    xml = query.render("GetMetricStatistics", "ns", result, op.output_shape, op.shapes, "rid").decode()
    assert "<GetMetricStatisticsResult><Label>Duration</Label><Datapoints><member>" in xml
    assert "<Timestamp>1970-01-01T00:00:00.000Z</Timestamp>" in xml
    assert "<ExtendedStatistics><entry><key>p99</key><value>1.5</value></entry></ExtendedStatistics>" in xml
    assert "<RequestId>rid</RequestId>" in xml


def test_cbor_encoding_tags_timestamps() -> None:
    op = OPS["GetMetricData"]
    assert op.output_shape is not None
    doc = {"MetricDataResults": [{"Id": "a", "Timestamps": [60.0], "Values": [1], "StatusCode": "Complete"}]}
    decoded = cbor2.loads(cbor2.dumps(rpc.encode(doc, op.output_shape, op.shapes)))
    [result] = decoded["MetricDataResults"]
    assert result["Timestamps"][0].timestamp() == 60.0
    assert isinstance(result["Values"][0], float)


def test_prometheus_guard_and_text(tmp_path: Path) -> None:
    async def main() -> None:
        store = MetricStore(tmp_path / "metrics.db")
        store.record_invocation('we"ird', None, "$LATEST", 12.0, error=True)
        store.record("AsyncEventsReceived", {"FunctionName": "f"}, 2, "Count")
        open_endpoint, guarded = PrometheusEndpoint(store), PrometheusEndpoint(store, "s3cret")
        assert (await open_endpoint(_request()))[0] == 200
        assert (await open_endpoint(_request("10.1.2.3")))[0] == 403
        assert (await guarded(_request()))[0] == 401
        assert (await guarded(_request("10.1.2.3", {"authorization": "Bearer s3cret"})))[0] == 200
        text = render(store)
        assert 'lambdad_errors_total{function="we\\"ird"} 1' in text
        assert 'lambdad_duration_seconds_bucket{function="we\\"ird",le="0.025"} 1' in text
        assert 'lambdad_events_total{metric="async_events_received",function="f"} 2' in text
        await store.close()

    asyncio.run(main())
