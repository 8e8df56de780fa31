"""The console's JSON API under ``/console/api/``: it calls lambdad's services in-process."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lambdad.console import views
from lambdad.console.web import ConsoleError, Response, field, json_body, json_response
from lambdad.events.mappings.service import MappingService
from lambdad.events.queues.store import QueueStore
from lambdad.events.scheduler.service import SchedulerService
from lambdad.functions import versions
from lambdad.functions.aliases import AliasService
from lambdad.functions.service import FunctionService
from lambdad.functions.urls import UrlService
from lambdad.http import awsmodel
from lambdad.http.app import Request
from lambdad.http.errors import AwsError
from lambdad.invoke.service import InvokeService
from lambdad.observe.logstore import LogStore
from lambdad.observe.metering import Meter, read_usage
from lambdad.observe.metrics import MetricStore, series_key

Endpoint = Callable[[Request, re.Match[str]], Awaitable[Response]]

_NAME = r"(?P<name>[A-Za-z0-9_-]{1,64})"
MAX_LOG_EVENTS = 500
MAX_PAYLOAD = 6 * 1024 * 1024
MAX_ENV_VARS = 100


@dataclass
class Services:
    """What the console reads and steers."""

    functions: FunctionService
    invoker: InvokeService
    logs: LogStore
    metrics: MetricStore
    meter: Meter
    queues: QueueStore
    mappings: MappingService
    schedules: SchedulerService | None


class ConsoleApi:
    """Routes ``(method, path)`` under ``/console/api`` to one method each."""

    def __init__(self, services: Services, operations: dict[str, awsmodel.Operation]) -> None:
        self.s = services
        self.operations = operations
        self.aliases = AliasService(services.functions)
        self.urls = UrlService(services.functions)
        self.routes: list[tuple[str, re.Pattern[str], Endpoint]] = [
            ("GET", re.compile(r"functions"), self.list_functions),
            ("POST", re.compile(r"functions"), self.create_function),
            ("GET", re.compile(rf"functions/{_NAME}"), self.get_function),
            ("PUT", re.compile(rf"functions/{_NAME}/configuration"), self.update_configuration),
            ("PUT", re.compile(rf"functions/{_NAME}/code"), self.update_code),
            ("GET", re.compile(rf"functions/{_NAME}/files"), self.files),
            ("POST", re.compile(rf"functions/{_NAME}/invoke"), self.invoke),
            ("GET", re.compile(rf"functions/{_NAME}/logs"), self.function_logs),
            ("GET", re.compile(rf"functions/{_NAME}/metrics"), self.function_metrics),
            ("GET", re.compile(r"queues"), self.list_queues),
            ("GET", re.compile(r"schedules"), self.list_schedules),
            ("GET", re.compile(r"usage"), self.usage),
        ]

    async def handle(self, request: Request, subpath: str) -> Response:
        allowed = False
        for method, pattern, endpoint in self.routes:
            found = pattern.fullmatch(subpath)
            if found is None:
                continue
            allowed = True
            if method == request.method:
                try:
                    return await endpoint(request, found)
                except AwsError as error:
                    raise ConsoleError(error.status, error.code, error.message) from error
        if allowed:
            raise ConsoleError(405, "MethodNotAllowed", f"{request.method} is not allowed here.")
        raise ConsoleError(404, "NotFound", f"No console API at /console/api/{subpath}.")

    def _validate(self, operation: str, params: dict[str, Any]) -> None:
        awsmodel.validate(self.operations[operation], params)

    # --- functions ---------------------------------------------------------------------------------

    async def list_functions(self, request: Request, _: re.Match[str]) -> Response:
        functions: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = await self.s.functions.list({"MaxItems": 50, "Marker": marker})
            functions.extend(page["Functions"])
            marker = page.get("NextMarker")
            if not marker:
                break
        end = int(self.s.metrics.now()) + 1
        slots = views.buckets(end - 3600, end, 300)
        rows = []
        for config in functions:
            name = config["FunctionName"]
            rows.append(
                {
                    "name": name,
                    "runtime": config.get("Runtime"),
                    "memorySize": config.get("MemorySize"),
                    "lastModified": config.get("LastModified"),
                    "state": config.get("State"),
                    "invocations": views.sums(await self._series("Invocations", name, slots, 300)),
                    "errors": views.sums(await self._series("Errors", name, slots, 300)),
                }
            )
        return json_response(200, {"functions": rows})

    async def create_function(self, request: Request, _: re.Match[str]) -> Response:
        body = json_body(request)
        params: dict[str, Any] = {
            "FunctionName": field(body, "name", str),
            "Runtime": field(body, "runtime", str),
            "Handler": field(body, "handler", str),
            "Role": f"arn:aws:iam::{self.s.functions.arns.account_id}:role/lambdad-console",
            "Code": {"ZipFile": _zip(body)},
        }
        for key, name in (("MemorySize", "memorySize"), ("Timeout", "timeout")):
            value = field(body, name, int, required=False)
            if value is not None:
                params[key] = value
        self._validate("CreateFunction", params)
        config = await self.s.functions.create(params)
        return json_response(201, {"configuration": config})

    async def get_function(self, request: Request, found: re.Match[str]) -> Response:
        name = found["name"]
        function = await self.s.functions.get_function({"FunctionName": name})
        config = function["Configuration"]
        by_name = {"FunctionName": name}
        listed = await versions.list_versions(self.s.functions, by_name)
        aliases = await self.aliases.list(by_name)
        urls = await self.urls.list(by_name)
        mappings = await self.s.mappings.list(by_name)
        schedules: list[dict[str, Any]] = []
        if self.s.schedules is not None:
            every = (await self.s.schedules.list({"MaxResults": 10_000}))["Schedules"]
            schedules = [s for s in every if views.schedule_targets_function(s, config["FunctionArn"])]
        return json_response(
            200,
            {
                "configuration": config,
                "versions": listed["Versions"],
                "aliases": aliases["Aliases"],
                "urls": urls["FunctionUrlConfigs"],
                "mappings": mappings["EventSourceMappings"],
                "schedules": schedules,
            },
        )

    async def update_configuration(self, request: Request, found: re.Match[str]) -> Response:
        body = json_body(request)
        params: dict[str, Any] = {"FunctionName": found["name"]}
        for key, name in (("MemorySize", "memorySize"), ("Timeout", "timeout")):
            value = field(body, name, int, required=False)
            if value is not None:
                params[key] = value
        environment = field(body, "environment", dict, required=False)
        if environment is not None:
            params["Environment"] = {"Variables": _environment(environment)}
        self._validate("UpdateFunctionConfiguration", params)
        await self._settled(found["name"])
        config = await self.s.functions.update_configuration(params)
        return json_response(200, {"configuration": config})

    async def update_code(self, request: Request, found: re.Match[str]) -> Response:
        body = json_body(request)
        params = {"FunctionName": found["name"], "ZipFile": _zip(body)}
        self._validate("UpdateFunctionCode", params)
        await self._settled(found["name"])
        config = await self.s.functions.update_code(params)
        return json_response(200, {"configuration": config})

    async def _settled(self, name: str) -> None:
        """Wait out a create or update still unpacking, which AWS would refuse with a 409, as the console's
        user cannot see that state and would only retry."""
        await self.s.functions.ready(await self.s.functions.resolve(name))

    async def files(self, request: Request, found: re.Match[str]) -> Response:
        record = await self.s.functions.resolve(found["name"])
        data = await asyncio.to_thread(self.s.functions.blobs.read, record.code_sha)
        path = request.query.get("path", [None])[0]
        if path is None:
            return json_response(200, {"files": views.package_files(data)})
        text = views.package_text(data, path)
        if text is None:
            raise ConsoleError(404, "NotShown", "The file is missing, larger than 64 KiB, or not UTF-8 text.")
        return json_response(200, {"path": path, "text": text})

    async def invoke(self, request: Request, found: re.Match[str]) -> Response:
        body = json_body(request)
        payload = field(body, "payload", str).encode()
        if len(payload) > MAX_PAYLOAD:
            raise ConsoleError(413, "PayloadTooLarge", f"The test event is larger than {MAX_PAYLOAD} bytes.")
        try:
            json.loads(payload)
        except ValueError as exc:
            raise ConsoleError(400, "InvalidJson", "The test event is not valid JSON.") from exc
        params = {"FunctionName": found["name"], "Payload": payload, "LogType": "Tail"}
        started = time.perf_counter()
        result = await self.s.invoker.invoke(params, str(uuid.uuid4()))
        tail = base64.b64decode(result.get("LogResult", "")).decode("utf-8", errors="replace")
        out = {
            "statusCode": result["StatusCode"],
            "functionError": result.get("FunctionError"),
            "payload": bytes(result.get("Payload") or b"").decode("utf-8", errors="replace"),
            "logTail": tail,
            "roundTripMs": round((time.perf_counter() - started) * 1000, 2),
        }
        out.update(views.parse_report(tail))
        return json_response(200, out)

    async def function_logs(self, request: Request, found: re.Match[str]) -> Response:
        record = await self.s.functions.resolve(found["name"])
        since = _int_query(request, "since", 0, 0, 2**53)
        needle = (request.query.get("filter", [""])[0])[:256].lower()
        start = max(since, self.s.logs.now_ms() - 24 * 3600 * 1000)
        group = f"/aws/lambda/{record.name}"
        try:
            result = await self.s.logs.filter_log_events(group, None, None, start, None, None, None, 10_000)
        except AwsError:
            return json_response(200, {"events": []})
        events = [
            {"timestamp": e["timestamp"], "stream": e["logStreamName"], "message": e["message"]}
            for e in result["events"]
            if needle in e["message"].lower()
        ]
        return json_response(200, {"events": events[-MAX_LOG_EVENTS:]})

    async def function_metrics(self, request: Request, found: re.Match[str]) -> Response:
        record = await self.s.functions.resolve(found["name"])
        name = record.name
        chosen = request.query.get("range", ["1h"])[0]
        if chosen not in views.RANGES:
            raise ConsoleError(400, "InvalidRange", f"range must be one of {', '.join(views.RANGES)}.")
        span, step = views.RANGES[chosen]
        end = int(self.s.metrics.now()) + 1
        slots = views.buckets(end - span, end, step)
        duration = await self._series("Duration", name, slots, step)
        series = {
            "Invocations": views.sums(await self._series("Invocations", name, slots, step)),
            "Errors": views.sums(await self._series("Errors", name, slots, step)),
            "Throttles": views.sums(await self._series("Throttles", name, slots, step)),
            "Duration p50": views.percentiles(duration, 50),
            "Duration p99": views.percentiles(duration, 99),
            "ConcurrentExecutions": views.maxima(
                await self._series("ConcurrentExecutions", name, slots, step)
            ),
        }
        return json_response(200, {"range": chosen, "step": step, "timestamps": slots, "series": series})

    async def _series(self, metric: str, function: str, slots: list[int], step: int) -> list[Any]:
        key = series_key(metric, {"FunctionName": function})
        start = slots[0] if slots else 0
        end = slots[-1] + step if slots else 0
        minutes = await self.s.metrics.aggregates(key, start, end, 60)
        return views.rebucket(minutes, slots, step)

    # --- other pages -------------------------------------------------------------------------------

    async def list_queues(self, request: Request, _: re.Match[str]) -> Response:
        rows = []
        for url in await self.s.queues.list_queues():
            name = self.s.queues.name_of(url)
            attributes = await self.s.queues.get_attributes(name, ["All"])
            rows.append({"name": name, "url": url, "attributes": attributes})
        return json_response(200, {"queues": rows})

    async def list_schedules(self, request: Request, _: re.Match[str]) -> Response:
        if self.s.schedules is None:
            return json_response(200, {"schedules": []})
        listed = await self.s.schedules.list({"MaxResults": 10_000})
        return json_response(200, {"schedules": listed["Schedules"]})

    async def usage(self, request: Request, _: re.Match[str]) -> Response:
        hours = _int_query(request, "hours", 24 * 30, 1, 24 * 366)
        since_hour = int(time.time()) // 3600 - hours
        await self.s.meter.flush()
        rows = await asyncio.to_thread(read_usage, self.s.meter.path, since_hour)
        usage = [
            {
                "function": u.function,
                "requests": u.requests,
                "gbSeconds": round(u.gb_seconds, 6),
                "errors": u.errors,
                "cost": round(u.cost, 8),
            }
            for u in rows
        ]
        total = round(sum(u.cost for u in rows), 8)
        return json_response(200, {"hours": hours, "usage": usage, "totalCost": total})


def _zip(body: dict[str, Any]) -> bytes:
    encoded = field(body, "zipBase64", str)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConsoleError(400, "InvalidField", "zipBase64 is not valid base64.") from exc


def _environment(variables: dict[str, Any]) -> dict[str, str]:
    if len(variables) > MAX_ENV_VARS:
        raise ConsoleError(400, "InvalidField", f"At most {MAX_ENV_VARS} environment variables.")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ConsoleError(
                400, "InvalidField", f"The value of environment variable {key} must be a string."
            )
    return dict(variables)


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, [None])[0]
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConsoleError(400, "InvalidQuery", f"{name} must be an integer.") from exc
    if not low <= value <= high:
        raise ConsoleError(400, "InvalidQuery", f"{name} must be between {low} and {high}.")
    return value
