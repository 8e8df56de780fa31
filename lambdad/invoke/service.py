"""Invoke: run a function once, synchronously, asynchronously or as a dry run.

This is the hot path. Per invoke it does: a cached record lookup, a concurrency lease, a pool take
(warm) or a sandbox start (cold), one frame out and one frame back, and in-memory appends for logs
and metering. Nothing here writes to disk or blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from lambdad.config import Settings
from lambdad.environments.environment import Environment, InitFailure, InvokeOutcome, InvokeRequest, State
from lambdad.environments.pool import EnvironmentPool
from lambdad.functions.aliases import pick_version
from lambdad.functions.arns import Arns, FunctionRef
from lambdad.functions.runtimes import installed_runtimes
from lambdad.functions.service import FunctionService
from lambdad.functions.versions import is_number
from lambdad.http.errors import (
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceException,
)
from lambdad.invoke import loglines
from lambdad.invoke.concurrency import Throttled
from lambdad.observe.metering import Meter
from lambdad.observe.metrics import MetricStore
from lambdad.randomness import random_hex
from lambdad.runtime.protocol import json_loads
from lambdad.sandbox.base import SandboxBackend, SandboxSpec
from lambdad.seconds import PerSecond
from lambdad.store.base import FunctionRecord
from lambdad.store.opt_trees import OptTrees

log = logging.getLogger("lambdad.invoke")

MAX_SYNC_RESPONSE = 6_291_556
MAX_ASYNC_PAYLOAD = 1_048_576
INIT_TIMEOUT_S = 10.0


class LogSink(Protocol):
    def append(self, group: str, stream: str, events: list[tuple[int, str]]) -> None: ...

    def append_invocation(
        self, group: str, stream: str, ts: int, invocation: loglines.Invocation
    ) -> None: ...


class AsyncSubmitter(Protocol):
    async def submit(self, function: str, qualifier: str | None, payload: bytes, request_id: str) -> None: ...


@dataclass(eq=False)
class WarmEnvironment:
    """An environment plus what the invoke path remembers about it.

    An environment whose init failed has ``env`` None and its ``failure`` kept, so the invoke that
    caused the cold start reports the init error as AWS does, and the pool discards it afterwards.
    """

    env: Environment | None
    stream: str
    version: str
    failure: InitFailure | None = None
    init_log: list[str] = field(default_factory=list)
    #: Started ahead for provisioned concurrency (its invocations are counted as such).
    provisioned: bool = False

    @property
    def init_duration_ms(self) -> float:
        if self.env is not None:
            return self.env.init_duration_ms
        return self.failure.init_duration_ms if self.failure else 0.0

    @property
    def dead(self) -> bool:
        return self.env is None or self.env.state is State.DEAD

    async def destroy(self) -> None:
        if self.env is not None:
            await self.env.destroy()


def fingerprint(record: FunctionRecord) -> str:
    """Everything that, when changed, retires the function's environments: the code and the
    configuration (LastModified moves on every code or configuration update, as on AWS; tags and
    permissions change the RevisionId but not what runs, so they retire nothing)."""
    c = record.config
    # Layers: layer versions are immutable, so their ARNs stand for their content.
    keys = (
        "Runtime",
        "Handler",
        "MemorySize",
        "Timeout",
        "Environment",
        "EphemeralStorage",
        "LastModified",
        "Layers",
    )
    doc = json.dumps([record.code_sha, [c.get(k) for k in keys]], sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


#: An invocation whose recording waits for the loop's next turn: _record's arguments.
_Deferred = tuple["_Prepared", WarmEnvironment, InvokeOutcome, str, bool, str | None, bool]


class _Prepared:
    """A cached function record with what every invoke of it reads out of its configuration."""

    def __init__(self, record: FunctionRecord) -> None:
        config = record.config
        self.record = record
        self.key = f"{record.name}:{record.version}"
        self.fingerprint = fingerprint(record)
        self.timeout_s = float(config["Timeout"])
        self.function_arn: str = config["FunctionArn"]
        self.memory = int(config["MemorySize"])
        self.log_group: str = config["LoggingConfig"]["LogGroup"]


class InvokeService:
    """Runs functions in the pool's environments and reports results as the Invoke API does."""

    def __init__(
        self,
        settings: Settings,
        functions: FunctionService,
        pool: EnvironmentPool[WarmEnvironment],
        backend: SandboxBackend,
        logs: LogSink,
        meter: Meter,
        metrics: MetricStore,
    ) -> None:
        self.settings = settings
        self.functions = functions
        self.arns: Arns = functions.arns
        self.pool = pool
        self.backend = backend
        self.logs = logs
        self.meter = meter
        self.metrics = metrics
        #: Active records by (name, version, qualifier as invoked); aliases by (name, alias).
        self._records: dict[tuple[str, str, str | None], FunctionRecord] = {}
        self._prepared_records: dict[int, _Prepared] = {}
        self._aliases: dict[tuple[str, str], dict[str, Any]] = {}
        #: The durable queue Event invokes go to (lambdad.invoke.async_queue.AsyncDispatcher).
        self.async_events: AsyncSubmitter | None = None
        self.opt_trees = OptTrees(settings.sandbox_root() / "opt", functions.blobs)
        self._deferred: list[_Deferred] = []
        functions.listeners.append(self._function_changed)

    async def _function_changed(self, name: str) -> None:
        for cached in [k for k in self._records if k[0] == name]:
            self._records.pop(cached, None)
        for alias in [k for k in self._aliases if k[0] == name]:
            self._aliases.pop(alias, None)
        record = await self.functions.store.get_function(name)
        self.pool.limiter.set_reserved(name, record.reserved_concurrency if record else None)
        if record is None:
            self.pool.retire(f"{name}:")

    async def load_reservations(self) -> None:
        after: str | None = None
        while page := await self.functions.store.list_functions(after, 500):
            for record in page:
                self.pool.limiter.set_reserved(record.name, record.reserved_concurrency)
            after = page[-1].name

    async def resolve(self, identifier: str, qualifier: str | None = None) -> FunctionRecord:
        """The version an invoke of FunctionName (+ Qualifier) runs, its FunctionArn as invoked."""
        return await self._resolve(self.arns.parse_function(identifier, qualifier))

    async def _resolve(self, ref: FunctionRef) -> FunctionRecord:
        """An alias picks its version per call, by the weights of its routing configuration."""
        q = ref.qualifier
        if q is None or q == "$LATEST" or is_number(q):
            return await self._version(ref.name, q or "$LATEST", q)
        alias = self._aliases.get((ref.name, q))
        if alias is None:
            alias = await self.functions.store.get_doc("aliases", ref.name, q)
            if alias is None:
                raise ResourceNotFoundException(f"Function not found: {self.arns.function(ref.name, q)}")
            self._aliases[(ref.name, q)] = alias
        return await self._version(ref.name, pick_version(alias), q)

    async def _version(self, name: str, version: str, qualifier: str | None) -> FunctionRecord:
        record = self._records.get((name, version, qualifier))
        if record is None:
            record = await self.functions.load_version(name, version, qualifier)
            record = await self.functions.ready(record)
            if qualifier is not None and not is_number(qualifier):
                config = {**record.config, "FunctionArn": self.arns.function(name, qualifier)}
                record = replace(record, config=config)
            if record.config.get("State") == "Active":
                self._records[(name, version, qualifier)] = record
        return record

    async def resolve_active(self, identifier: str, qualifier: str | None) -> FunctionRecord:
        """The Active record an invoke of ``identifier`` (+ ``qualifier``) runs; the async dispatcher's lookup."""
        return _active(await self.resolve(identifier, qualifier))

    # -- the API operation ---------------------------------------------------------------------

    async def invoke(self, params: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        ref = self.arns.parse_function(params["FunctionName"], params.get("Qualifier"))
        record = _active(await self._resolve(ref))
        kind = params.get("InvocationType") or "RequestResponse"
        payload = params.get("Payload") or b"{}"
        _check_json(payload)
        if kind == "DryRun":
            return {"StatusCode": 204}
        if kind == "Event":
            if len(payload) > MAX_ASYNC_PAYLOAD:
                raise RequestEntityTooLargeException(
                    f"Request must be smaller than {MAX_ASYNC_PAYLOAD} bytes for the InvokeFunction operation"
                )
            if self.async_events is None:
                raise ServiceException("Asynchronous invocation is not available on this server.")
            await self.async_events.submit(record.name, ref.qualifier, payload, request_id)
            return {"StatusCode": 202}
        qualifier = ref.qualifier
        try:
            tail = params.get("LogType") == "Tail"
            outcome, lines = await self.run(
                record, payload, request_id, params.get("ClientContext"), qualifier, after_answer=not tail
            )
        except Throttled:
            self.metrics.record_throttle(record.name, qualifier)
            raise
        result: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": outcome.payload,
            "ExecutedVersion": record.version,
        }
        if outcome.kind != "ok":
            result["FunctionError"] = "Unhandled"
        if tail:
            result["LogResult"] = base64.b64encode(loglines.tail(lines).encode()).decode()
        return result

    # -- running one invocation ----------------------------------------------------------------

    async def run(
        self,
        record: FunctionRecord,
        payload: bytes,
        request_id: str,
        client_context: str | None,
        qualifier: str | None = None,
        after_answer: bool = False,
    ) -> tuple[InvokeOutcome, list[str]]:
        """Invoke once; returns the outcome and the invocation's log lines. ``qualifier`` is the one
        the caller used (an alias or version), for the Resource dimension of its metrics.

        With ``after_answer`` the log lines, metrics and metering are recorded in the loop's next
        iteration, after the caller has written its answer (no lines are returned): they are not on
        a synchronous invoke's latency. Callers that act on an invocation's being recorded (the
        async queue deletes an event only once its logs are committed) leave it False, so the
        lines are buffered before run() returns.
        """
        prepared = self._prepared(record)
        key = prepared.key
        async with self.pool.acquire(
            key, record.name, prepared.fingerprint, lambda: self._start(record)
        ) as lease:
            warm = lease.env
            request = InvokeRequest(
                request_id=request_id,
                payload=payload,
                timeout_s=prepared.timeout_s,
                invoked_function_arn=prepared.function_arn,
                client_context=client_context,
                cognito_identity=None,
                trace_id=_trace_id(),
            )
            if warm.env is None:
                outcome = self._init_failed(warm, request_id)
            else:
                outcome = await warm.env.invoke(request)
                if outcome.kind == "ok" and len(outcome.payload) > MAX_SYNC_RESPONSE:
                    outcome = _too_large(outcome)
            provisioned = self.pool.has_provisioned(key)
            if after_answer:
                self._defer_record((prepared, warm, outcome, request_id, lease.cold, qualifier, provisioned))
                return outcome, []
            lines = self._record(prepared, warm, outcome, request_id, lease.cold, qualifier, provisioned)
        return outcome, lines

    def _defer_record(self, invocation: _Deferred) -> None:
        """Record ``invocation`` in the loop's next turn, with every other invoke answered in this
        one: one scheduled call per turn instead of one per invoke."""
        self._deferred.append(invocation)
        if len(self._deferred) == 1:  # the turn's first: get_running_loop() once per turn
            asyncio.get_running_loop().call_soon(self._record_deferred)

    def _record_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for prepared, warm, outcome, request_id, cold, qualifier, provisioned in deferred:
            try:
                self._record(prepared, warm, outcome, request_id, cold, qualifier, provisioned, False)
            except Exception:  # one invocation's bookkeeping must not lose the others'
                log.exception("recording an invocation failed", extra={"request_id": request_id})

    def _record(
        self,
        prepared: _Prepared,
        warm: WarmEnvironment,
        outcome: InvokeOutcome,
        request_id: str,
        cold: bool,
        qualifier: str | None,
        provisioned_config: bool,
        lines_wanted: bool = True,
    ) -> list[str]:
        """The invocation's log lines (stored, and returned when wanted), metrics and metering."""
        record, memory = prepared.record, prepared.memory
        if not cold and outcome.kind in ("ok", "function_error"):  # the usual invocation
            invocation = (
                request_id,
                warm.version,
                outcome.log,
                outcome.duration_ms,
                memory,
                outcome.max_memory_mb,
            )
            group, now = prepared.log_group, int(time.time() * 1000)
            if lines_wanted:
                lines = loglines.invocation_lines(invocation)
                self.logs.append(group, warm.stream, [(now, line) for line in lines])
            else:  # the log writer process makes its lines, off this thread
                self.logs.append_invocation(group, warm.stream, now, invocation)
                lines = []
        else:
            lines = self._log_invocation(record, warm, outcome, request_id, memory, cold)
        self._count(record, warm, outcome, qualifier, memory, provisioned_config)
        return lines

    def _count(
        self,
        record: FunctionRecord,
        warm: WarmEnvironment,
        outcome: InvokeOutcome,
        qualifier: str | None,
        memory: int,
        provisioned_config: bool,
    ) -> None:
        """Metering and metrics (AWS/Lambda's names and dimensions) of one invocation that ran."""
        error = outcome.kind != "ok"
        self.meter.record(record.name, loglines.billed_ms(outcome.duration_ms), memory, error)
        self.metrics.record_invocation(record.name, qualifier, record.version, outcome.duration_ms, error)
        if warm.provisioned or provisioned_config:
            name = (
                "ProvisionedConcurrencyInvocations"
                if warm.provisioned
                else "ProvisionedConcurrencySpilloverInvocations"
            )
            dims = {"FunctionName": record.name, "Resource": f"{record.name}:{qualifier or record.version}"}
            self.metrics.record(name, dims, 1, "Count")

    def _prepared(self, record: FunctionRecord) -> _Prepared:
        """What every invoke of ``record`` reads, computed once per cached record (the fingerprint
        hashes the configuration)."""
        prepared = self._prepared_records.get(id(record))
        if prepared is None or prepared.record is not record:
            if len(self._prepared_records) > 4096:
                self._prepared_records.clear()
            prepared = _Prepared(record)
            self._prepared_records[id(record)] = prepared
        return prepared

    async def start_environment(self, record: FunctionRecord, init_type: str) -> WarmEnvironment:
        """A new environment of ``record`` (the provisioned-concurrency warmer's entry)."""
        return await self._start(record, init_type)

    async def _opt_dir(self, record: FunctionRecord) -> Path | None:
        """The merged tree of the function's layers, bound at /opt."""
        layers = record.config.get("Layers")
        if not layers:
            return None
        hashes = await self.functions.layers.blob_hashes(layers)
        return await asyncio.to_thread(self.opt_trees.tree, hashes)

    async def _start(self, record: FunctionRecord, init_type: str = "on-demand") -> WarmEnvironment:
        version = record.version
        stream = loglines.stream_name(version)
        spec = SandboxSpec(
            sandbox_id=f"ld-{uuid.uuid4().hex[:12]}",
            runtime=record.config["Runtime"],
            code_dir=self.functions.blobs.unpacked(record.code_sha),
            opt_dir=await self._opt_dir(record),
            memory_mb=int(record.config["MemorySize"]),
            ephemeral_mb=int(record.config.get("EphemeralStorage", {}).get("Size", 512)),
            handler=record.config["Handler"],
            env=self._environment(record, stream, init_type),
        )
        log.debug("cold start", extra={"function": record.name, "version": version})
        try:
            env = await Environment.start(self.backend, spec, INIT_TIMEOUT_S)
        except InitFailure as failure:
            return WarmEnvironment(None, stream, version, failure, _init_error_lines(failure))
        return WarmEnvironment(env, stream, version, provisioned=init_type == "provisioned-concurrency")

    def _environment(
        self, record: FunctionRecord, stream: str, init_type: str = "on-demand"
    ) -> dict[str, str]:
        """The variables AWS sets in every execution environment, then the function's own."""
        c = record.config
        runtime = installed_runtimes().get(c["Runtime"])
        env = {
            "_HANDLER": c["Handler"],
            "AWS_LAMBDA_FUNCTION_NAME": record.name,
            "AWS_LAMBDA_FUNCTION_VERSION": record.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c["MemorySize"]),
            "AWS_LAMBDA_LOG_GROUP_NAME": c["LoggingConfig"]["LogGroup"],
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        }
        if runtime is not None and runtime.execution_env:
            env["AWS_EXECUTION_ENV"] = runtime.execution_env
        env.update((c.get("Environment") or {}).get("Variables") or {})
        return env

    def _init_failed(self, warm: WarmEnvironment, request_id: str) -> InvokeOutcome:
        failure = warm.failure
        assert failure is not None
        error = json.loads(failure.error_json) if failure.error_json else {}
        error.setdefault("errorType", failure.error_type)
        error.setdefault("errorMessage", failure.error_message)
        error["requestId"] = request_id
        error.setdefault("stackTrace", [])
        return InvokeOutcome(
            kind="function_error",
            payload=json.dumps(error).encode(),
            error_type=failure.error_type,
            log=failure.log,
            duration_ms=failure.init_duration_ms,
            max_memory_mb=0,
            environment_dead=True,
        )

    def _log_invocation(
        self,
        record: FunctionRecord,
        warm: WarmEnvironment,
        outcome: InvokeOutcome,
        request_id: str,
        memory: int,
        cold: bool,
    ) -> list[str]:
        lines = list(warm.init_log) if cold else []
        lines.append(loglines.start_line(request_id, warm.version))
        lines += loglines.output_lines(outcome.log)
        if outcome.kind == "timeout":
            lines.append(
                f"{_iso_now()} {request_id} Task timed out after {float(record.config['Timeout']):.2f} seconds\n"
            )
        lines.append(loglines.end_line(request_id))
        status = {"timeout": "timeout", "oom": "error", "crash": "error"}.get(outcome.kind)
        report = loglines.Report(
            request_id=request_id,
            duration_ms=outcome.duration_ms,
            memory_mb=memory,
            max_memory_mb=outcome.max_memory_mb,
            init_duration_ms=warm.init_duration_ms if cold else None,
            status=status,
            error_type=outcome.error_type if status == "error" else None,
        )
        lines.append(report.line())
        now = int(time.time() * 1000)
        self.logs.append(
            record.config["LoggingConfig"]["LogGroup"], warm.stream, [(now, line) for line in lines]
        )
        return lines


def _active(record: FunctionRecord) -> FunctionRecord:
    state = record.config.get("State")
    if state != "Active":
        raise ResourceConflictException(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {state}"
        )
    return record


def _init_error_lines(failure: InitFailure) -> list[str]:
    lines = loglines.output_lines(failure.log)
    doc = (
        failure.error_json.decode()
        if failure.error_json
        else json.dumps({"errorMessage": failure.error_message, "errorType": failure.error_type})
    )
    lines.append(f"[ERROR] {failure.error_type}: {failure.error_message}\n" if not doc else f"{doc}\n")
    lines.append(
        f"INIT_REPORT Init Duration: {failure.init_duration_ms:.2f} ms\tPhase: init\tStatus: error\t"
        f"Error Type: {failure.error_type}\n"
    )
    return lines


def _check_json(payload: bytes) -> None:
    try:
        json_loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {exc}"
        ) from exc


def _too_large(outcome: InvokeOutcome) -> InvokeOutcome:
    error = {
        "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_SYNC_RESPONSE} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    outcome.kind = "function_error"
    outcome.payload = json.dumps(error).encode()
    outcome.error_type = error["errorType"]
    return outcome


_TRACE_ROOT = PerSecond(lambda second: f"Root=1-{second:08x}-")


def _trace_id() -> str:
    rand = random_hex(20)
    return _TRACE_ROOT.now() + rand[:24] + ";Parent=" + rand[24:] + ";Sampled=0"


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
