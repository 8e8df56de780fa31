"""The CloudWatch Logs API (json protocol, ``Logs_20140328``) over the log store.

Each handler unpacks the operation's input (already validated against botocore's model by the app),
calls the store and returns the output shape; the store raises AWS's errors itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdad.http import awsmodel
from lambdad.http.app import Handler, JsonService, Request, json_service
from lambdad.observe.logstore import LogStore

Params = dict[str, Any]
Output = Mapping[str, Any] | None


def logs_service(store: LogStore) -> JsonService:
    """Every supported CloudWatch Logs operation, by its model name."""
    return json_service(awsmodel.load_model("logs"), _handlers(store))


def _handlers(store: LogStore) -> dict[str, Handler]:
    def group(p: Params) -> str:
        return store.group_name(p.get("logGroupName"), p.get("logGroupIdentifier"))

    async def create_log_group(p: Params, _: Request) -> Output:
        await store.create_log_group(p["logGroupName"], p.get("logGroupClass"))
        return None

    async def delete_log_group(p: Params, _: Request) -> Output:
        await store.delete_log_group(p["logGroupName"])
        return None

    async def describe_log_groups(p: Params, _: Request) -> Output:
        return await store.describe_log_groups(
            p.get("logGroupNamePrefix"), p.get("logGroupNamePattern"), p.get("nextToken"), p.get("limit")
        )

    async def create_log_stream(p: Params, _: Request) -> Output:
        await store.create_log_stream(p["logGroupName"], p["logStreamName"])
        return None

    async def delete_log_stream(p: Params, _: Request) -> Output:
        await store.delete_log_stream(p["logGroupName"], p["logStreamName"])
        return None

    async def describe_log_streams(p: Params, _: Request) -> Output:
        return await store.describe_log_streams(
            group(p),
            p.get("logStreamNamePrefix"),
            p.get("orderBy"),
            bool(p.get("descending", False)),
            p.get("nextToken"),
            p.get("limit"),
        )

    async def put_log_events(p: Params, _: Request) -> Output:
        return await store.put_log_events(p["logGroupName"], p["logStreamName"], p["logEvents"])

    async def get_log_events(p: Params, _: Request) -> Output:
        return await store.get_log_events(
            group(p),
            p["logStreamName"],
            p.get("startTime"),
            p.get("endTime"),
            p.get("nextToken"),
            p.get("limit"),
            bool(p.get("startFromHead", False)),
        )

    async def filter_log_events(p: Params, _: Request) -> Output:
        return await store.filter_log_events(
            group(p),
            p.get("logStreamNames"),
            p.get("logStreamNamePrefix"),
            p.get("startTime"),
            p.get("endTime"),
            p.get("filterPattern"),
            p.get("nextToken"),
            p.get("limit"),
        )

    async def put_retention_policy(p: Params, _: Request) -> Output:
        await store.put_retention_policy(p["logGroupName"], int(p["retentionInDays"]))
        return None

    async def delete_retention_policy(p: Params, _: Request) -> Output:
        await store.delete_retention_policy(p["logGroupName"])
        return None

    return {
        "CreateLogGroup": create_log_group,
        "DeleteLogGroup": delete_log_group,
        "DescribeLogGroups": describe_log_groups,
        "CreateLogStream": create_log_stream,
        "DeleteLogStream": delete_log_stream,
        "DescribeLogStreams": describe_log_streams,
        "PutLogEvents": put_log_events,
        "GetLogEvents": get_log_events,
        "FilterLogEvents": filter_log_events,
        "PutRetentionPolicy": put_retention_policy,
        "DeleteRetentionPolicy": delete_retention_policy,
    }
