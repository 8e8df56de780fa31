"""The CloudWatch metrics API (GetMetricStatistics, GetMetricData, ListMetrics) over the metric store.

The same handlers serve all three wire protocols CloudWatch clients speak (smithy-rpc-v2-cbor,
json and query): they take the operation's input dict, whose timestamps may arrive as datetimes
(CBOR), epoch seconds (json) or ISO 8601 strings (query), and return timestamps as epoch seconds,
which each protocol's renderer encodes its own way. Validation follows CloudWatch's codes and
wording; an unknown namespace, metric or dimension set is not an error, it just has no data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdad.http import awsmodel
from lambdad.http.app import Handler, JsonService, Request, json_service
from lambdad.http.errors import (
    InvalidNextToken,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
)
from lambdad.observe.metrics import Agg, MetricStore, SeriesKey

Params = dict[str, Any]
Output = Mapping[str, Any] | None

TARGET_PREFIX = "GraniteServiceVersion20100801"
API_VERSION = "2010-08-01"
OPERATIONS = frozenset({"GetMetricStatistics", "GetMetricData", "ListMetrics"})
BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
HIGH_RES_PERIODS = (1, 5, 10, 30)
MAX_STATISTICS_DATAPOINTS = 1440
DEFAULT_MAX_DATAPOINTS = 100_800
LIST_PAGE = 500
LIST_WINDOW_S = 14 * 86_400
RECENTLY_ACTIVE_S = {"PT3H": 3 * 3600}
_PERCENTILE = re.compile(r"^p(\d{1,3}(?:\.\d{1,10})?)$")


def cloudwatch_service(store: MetricStore) -> JsonService:
    """The supported CloudWatch operations, by their model names."""
    api = CloudWatchApi(store)
    handlers: dict[str, Handler] = {
        "GetMetricStatistics": api.get_metric_statistics,
        "GetMetricData": api.get_metric_data,
        "ListMetrics": api.list_metrics,
    }
    return json_service(awsmodel.load_model("cloudwatch"), handlers)


# --- input helpers -----------------------------------------------------------------------------


def epoch(value: Any, name: str) -> float:
    """A timestamp from any protocol's encoding, as epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return epoch(datetime.fromisoformat(value.replace("Z", "+00:00")), name)
        except ValueError:
            pass
    raise InvalidParameterValue(f"The parameter {name} must be a valid timestamp.")


def _required(params: Params, *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise MissingParameter(f"The parameter {name} is required.")


def _dimensions(items: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    dims: dict[str, str] = {}
    for item in items or ():
        name, value = item.get("Name"), item.get("Value")
        if not name or value is None:
            raise InvalidParameterValue("A dimension must have both a Name and a Value.")
        if name in dims:
            raise InvalidParameterValue(f"The dimension {name} is specified more than once.")
        dims[name] = value
    return dims


def check_period(period: Any, name: str = "Period") -> int:
    if not isinstance(period, int) or period < 1:
        raise InvalidParameterValue(f"The parameter {name} must be greater than 0.")
    if period < 60 and period not in HIGH_RES_PERIODS:
        raise InvalidParameterValue(
            f"The parameter {name} must be 1, 5, 10, 30, or a multiple of 60 for high-resolution metrics."
        )
    if period >= 60 and period % 60:
        raise InvalidParameterValue(f"The parameter {name} must be a multiple of 60.")
    return period


def check_range(start: float, end: float) -> None:
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")


def aligned_start(start: float, period: int) -> int:
    """CloudWatch rounds StartTime down: to the second for high resolution, else to the minute."""
    step = 1 if period < 60 else 60
    return int(start // step * step)


def percentile_of(stat: str) -> float | None:
    """The percentile of ``pNN[.NN]`` (0 to 100), or None when ``stat`` is not one."""
    match = _PERCENTILE.match(stat)
    if match is None:
        return None
    value = float(match.group(1))
    return value if value <= 100 else None


def check_stat(stat: str, parameter: str) -> str:
    if stat not in BASIC_STATISTICS and percentile_of(stat) is None:
        raise InvalidParameterValue(f"The value {stat} for parameter {parameter} is not supported.")
    return stat


def statistic(agg: Agg, stat: str) -> float | None:
    """One statistic of an aggregate (None when it has no value)."""
    if agg.count == 0:
        return None
    if stat == "SampleCount":
        return agg.count
    if stat == "Sum":
        return agg.sum
    if stat == "Average":
        return agg.sum / agg.count
    if stat == "Minimum":
        return agg.min
    if stat == "Maximum":
        return agg.max
    p = percentile_of(stat)
    return agg.percentile(p) if p is not None else None


def _fingerprint(params: Params) -> str:
    body = {k: v for k, v in params.items() if k not in ("NextToken", "MaxDatapoints")}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


def _encode_token(doc: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, fingerprint: str, error: type[InvalidNextToken | InvalidParameterValue]) -> Any:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error) as exc:
        raise error("The NextToken is invalid.") from exc
    if not isinstance(doc, dict) or doc.get("f") != fingerprint:
        raise error("The NextToken is invalid.")
    return doc


@dataclass
class _Query:
    id: str
    key: SeriesKey
    period: int
    stat: str
    unit: str | None
    label: str
    return_data: bool


class CloudWatchApi:
    """Handlers for the three read operations."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    async def _series(
        self, key: SeriesKey, start: float, end: float, period: int, unit: str | None
    ) -> list[tuple[int, Agg]]:
        """Aggregates of ``key`` per period in [start, end), by period start; empty on a unit mismatch."""
        if unit is not None and self.store.unit_of(key) not in (unit, None):
            return []
        first = aligned_start(start, period)
        last = math.ceil(end)
        resolution = 1 if period < 60 else 60
        per_slot = await self.store.aggregates(key, first, last, resolution)
        buckets: dict[int, Agg] = {}
        for ts, agg in per_slot.items():
            slot = first + (ts - first) // period * period
            target = buckets.get(slot)
            if target is None:
                target = buckets[slot] = Agg()
            target.merge(agg)
        return sorted(buckets.items())

    # --- GetMetricStatistics ----------------------------------------------------------------------

    async def get_metric_statistics(self, p: Params, _: Request) -> Output:
        _required(p, "Namespace", "MetricName", "StartTime", "EndTime", "Period")
        statistics = list(p.get("Statistics") or [])
        extended = list(p.get("ExtendedStatistics") or [])
        if not statistics and not extended:
            raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
        for stat in statistics:
            if stat not in BASIC_STATISTICS:
                raise InvalidParameterValue(f"The value {stat} for parameter Statistics is not supported.")
        for stat in extended:
            if percentile_of(stat) is None:
                raise InvalidParameterValue(
                    f"The value {stat} for parameter ExtendedStatistics is not supported."
                )
        period = check_period(p["Period"])
        start, end = epoch(p["StartTime"], "StartTime"), epoch(p["EndTime"], "EndTime")
        check_range(start, end)
        requested = math.ceil((end - start) / period)
        if requested > MAX_STATISTICS_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {requested:,} datapoints, which exceeds the limit of 1,440. "
                "You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )
        key = (p["Namespace"], p["MetricName"], tuple(sorted(_dimensions(p.get("Dimensions")).items())))
        unit = p.get("Unit")
        series_unit = unit or self.store.unit_of(key) or "None"
        datapoints = []
        for ts, agg in await self._series(key, start, end, period, unit):
            point: dict[str, Any] = {"Timestamp": float(ts), "Unit": series_unit}
            for stat in statistics:
                point[stat] = statistic(agg, stat)
            if extended:
                point["ExtendedStatistics"] = {stat: statistic(agg, stat) for stat in extended}
            datapoints.append(point)
        return {"Label": p["MetricName"], "Datapoints": datapoints}

    # --- GetMetricData ----------------------------------------------------------------------------

    def _queries(self, p: Params) -> list[_Query]:
        queries = p.get("MetricDataQueries") or []
        if not queries:
            raise MissingParameter("The parameter MetricDataQueries is required.")
        seen: set[str] = set()
        out = []
        for index, query in enumerate(queries, 1):
            where = f"MetricDataQueries.member.{index}"
            qid = query.get("Id") or ""
            if qid in seen:
                raise InvalidParameterValue(f"The value {qid} for parameter {where}.Id is not unique.")
            seen.add(qid)
            stat_spec, expression = query.get("MetricStat"), query.get("Expression")
            if (stat_spec is None) == (expression is None):
                raise InvalidParameterCombination(
                    f"Exactly one element of MetricStat and Expression must be specified in {where}."
                )
            if expression is not None:
                raise InvalidParameterValue(
                    f"The parameter {where}.Expression is not supported by lambdad yet; use MetricStat."
                )
            metric = stat_spec.get("Metric") or {}
            if not metric.get("Namespace") or not metric.get("MetricName"):
                raise MissingParameter(
                    f"The parameter {where}.MetricStat.Metric must have a Namespace and MetricName."
                )
            key = (
                metric["Namespace"],
                metric["MetricName"],
                tuple(sorted(_dimensions(metric.get("Dimensions")).items())),
            )
            out.append(
                _Query(
                    id=qid,
                    key=key,
                    period=check_period(stat_spec.get("Period"), f"{where}.MetricStat.Period"),
                    stat=check_stat(str(stat_spec.get("Stat")), f"{where}.MetricStat.Stat"),
                    unit=stat_spec.get("Unit"),
                    label=query.get("Label") or metric["MetricName"],
                    return_data=query.get("ReturnData", True) is not False,
                )
            )
        return out

    async def get_metric_data(self, p: Params, _: Request) -> Output:
        _required(p, "StartTime", "EndTime")
        queries = self._queries(p)
        start, end = epoch(p["StartTime"], "StartTime"), epoch(p["EndTime"], "EndTime")
        check_range(start, end)
        descending = (p.get("ScanBy") or "TimestampDescending") == "TimestampDescending"
        budget = p.get("MaxDatapoints") or DEFAULT_MAX_DATAPOINTS
        if not isinstance(budget, int) or budget < 1:
            raise InvalidParameterValue("The parameter MaxDatapoints must be greater than 0.")
        fingerprint = _fingerprint(p)
        first_query, offset = 0, 0
        if p.get("NextToken"):
            doc = _decode_token(p["NextToken"], fingerprint, InvalidNextToken)
            first_query, offset = int(doc.get("q", 0)), int(doc.get("o", 0))
        results: list[dict[str, Any]] = []
        next_token = None
        for index in range(first_query, len(queries)):
            query = queries[index]
            if not query.return_data:
                continue
            points = [
                (float(ts), value)
                for ts, agg in await self._series(query.key, start, end, query.period, query.unit)
                if (value := statistic(agg, query.stat)) is not None
            ]
            if descending:
                points.reverse()
            skip = offset if index == first_query else 0
            page = points[skip : skip + budget]
            budget -= len(page)
            complete = skip + len(page) >= len(points)
            results.append(
                {
                    "Id": query.id,
                    "Label": query.label,
                    "Timestamps": [ts for ts, _ in page],
                    "Values": [value for _, value in page],
                    "StatusCode": "Complete" if complete else "PartialData",
                    "Messages": [],
                }
            )
            if not complete:
                next_token = _encode_token({"q": index, "o": skip + len(page), "f": fingerprint})
                break
            if budget == 0 and index + 1 < len(queries):
                next_token = _encode_token({"q": index + 1, "o": 0, "f": fingerprint})
                break
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if next_token is not None:
            out["NextToken"] = next_token
        return out

    # --- ListMetrics ------------------------------------------------------------------------------

    async def list_metrics(self, p: Params, _: Request) -> Output:
        namespace, name = p.get("Namespace"), p.get("MetricName")
        filters = [(f.get("Name"), f.get("Value")) for f in p.get("Dimensions") or []]
        window = LIST_WINDOW_S
        if p.get("RecentlyActive") is not None:
            if p["RecentlyActive"] not in RECENTLY_ACTIVE_S:
                raise InvalidParameterValue(
                    f"The value {p['RecentlyActive']} for parameter RecentlyActive is not valid."
                )
            window = RECENTLY_ACTIVE_S[p["RecentlyActive"]]
        since = self.store.now() - window
        matches = []
        for metric, last_seen in self.store.metrics():
            if last_seen < since or (namespace and metric.namespace != namespace):
                continue
            if name and metric.name != name:
                continue
            dims = dict(metric.dimensions)
            if any(
                fname not in dims or (fvalue is not None and dims[fname] != fvalue)
                for fname, fvalue in filters
            ):
                continue
            matches.append(
                {
                    "Namespace": metric.namespace,
                    "MetricName": metric.name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in metric.dimensions],
                }
            )
        fingerprint = _fingerprint(p)
        offset = 0
        if p.get("NextToken"):
            offset = int(_decode_token(p["NextToken"], fingerprint, InvalidParameterValue).get("o", 0))
        out: dict[str, Any] = {"Metrics": matches[offset : offset + LIST_PAGE]}
        if offset + LIST_PAGE < len(matches):
            out["NextToken"] = _encode_token({"o": offset + LIST_PAGE, "f": fingerprint})
        return out
