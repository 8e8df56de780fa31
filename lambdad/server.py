"""The composition root: builds the store, the services and the HTTP app from Settings."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import parse_qs

from lambdad import __version__, compiled
from lambdad.config import Settings
from lambdad.console.api import Services as ConsoleServices
from lambdad.console.console import Console
from lambdad.environments.pool import EnvironmentPool
from lambdad.events.mappings.api import mapping_handlers
from lambdad.events.mappings.wiring import build_mappings
from lambdad.events.queues.store import QueueStore
from lambdad.events.queues.wiring import install_queues
from lambdad.events.scheduler.api import install_scheduler
from lambdad.events.scheduler.wiring import Scheduler
from lambdad.functions.api import function_handlers
from lambdad.functions.arns import Arns
from lambdad.functions.event_invoke_config import EventInvokeConfigs, event_invoke_config_handlers
from lambdad.functions.provisioned import ProvisionedService
from lambdad.functions.resources_api import install_function_resources, layer_handlers, provisioned_handlers
from lambdad.functions.runtimes import installed_runtimes
from lambdad.functions.service import AccountLimits, FunctionService
from lambdad.http import auth, awsmodel
from lambdad.http.app import App, Headers, Request
from lambdad.invoke.api import invoke_handlers
from lambdad.invoke.async_queue import AsyncDispatcher, AsyncStore
from lambdad.invoke.concurrency import ConcurrencyLimiter
from lambdad.invoke.destinations import Destinations
from lambdad.invoke.provisioned import ProvisionedWarmer
from lambdad.invoke.service import InvokeService, WarmEnvironment
from lambdad.observe.logstore import LogStore
from lambdad.observe.metering import Meter
from lambdad.observe.metrics import MetricStore
from lambdad.observe.metrics_wiring import install_metrics
from lambdad.observe.wiring import install_logs
from lambdad.sandbox.base import SandboxBackend
from lambdad.store.blobs import BlobStore
from lambdad.store.sqlite import SqliteStore

log = logging.getLogger("lambdad.server")


class Server:
    """One lambdad node: everything behind the HTTP endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        self.credentials = auth.load_or_create(data, settings.access_key_id, settings.secret_access_key)
        self.store = SqliteStore(data / "lambdad.db")
        runtime = settings.sandbox_root()
        for path in (runtime.parent, runtime):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o711)
        self.blobs = BlobStore(data, code_root=runtime / "code")
        self.arns = Arns(settings.region, settings.account_id)
        self.functions = FunctionService(
            self.store,
            self.blobs,
            self.arns,
            settings.endpoint,
            auth.url_signing_key(data),
            AccountLimits(settings.max_concurrency),
        )
        self.logs = LogStore(data / "logs.db", settings.region, settings.account_id)
        self.meter = Meter(data / "usage.db")
        self.metrics = MetricStore(data / "metrics.db", retention_days=settings.metrics_retention_days)
        self.queues = QueueStore(
            data / "queues.db", settings.region, settings.account_id, endpoint=settings.endpoint
        )
        self.limiter = ConcurrencyLimiter(settings.max_concurrency)
        self.pool: EnvironmentPool[WarmEnvironment] = EnvironmentPool(self.limiter, settings.idle_timeout_s)
        self.backend = make_backend(settings)
        self.invoker = InvokeService(
            settings, self.functions, self.pool, self.backend, self.logs, self.meter, self.metrics
        )
        self.async_store = AsyncStore(data / "async.db")
        self.async_events = AsyncDispatcher(
            self.async_store,
            self.invoker,
            self.limiter,
            self.metrics,
            settings.async_retry_delay_s,
            durable=self.logs.flush,
        )
        self.invoker.async_events = self.async_events
        self.provisioned = ProvisionedService(self.functions, ProvisionedWarmer(self.invoker))
        self.destinations = Destinations(
            self.arns, self.queues, self.async_events, self.invoker, self.metrics
        )
        self.event_invoke_configs = EventInvokeConfigs(self.functions, self.queues, self.async_store)
        self.mappings = build_mappings(data, self.functions, self.queues, self.invoker)
        self.scheduler = Scheduler(data, self.functions, self.queues, self.invoker, self.async_events.submit)
        self.console = Console(
            self.credentials,
            ConsoleServices(
                self.functions,
                self.invoker,
                self.logs,
                self.metrics,
                self.meter,
                self.queues,
                self.mappings,
                self.scheduler.service,
            ),
        )
        self.started_at = time.time()
        self.ready = False

    def build_app(self) -> App:
        operations = awsmodel.build_operations(awsmodel.load_model("lambda"))
        handlers = function_handlers(self.functions) | invoke_handlers(self.invoker)
        handlers |= event_invoke_config_handlers(self.event_invoke_configs)
        handlers |= mapping_handlers(self.mappings)
        handlers |= layer_handlers(self.functions.layers, self.blobs)
        handlers |= provisioned_handlers(self.provisioned)
        app = App(
            lambda_operations=operations,
            lambda_handlers=handlers,
            authenticate=auth.SigV4Authenticator(self.credentials, self.settings.region),
            raw_routes={"/health": self._health, "/_lambdad/code": self._code_download},
            on_startup=self.startup,
            on_shutdown=self.shutdown,
        )
        install_function_resources(app, self.functions, self.invoker)
        install_logs(app, self.logs)
        install_queues(app, self.queues)
        install_metrics(app, self.metrics, self.settings.metrics_token)
        install_scheduler(app, self.scheduler.service)
        self.console.install(app)
        return app

    async def startup(self) -> None:
        self.blobs.clean_temp()
        await self.logs.start()
        await self.queues.start()
        self.meter.start()
        await self.metrics.start()
        self.metrics.set_concurrency_source(
            lambda: dict(self.limiter.in_flight), lambda: self.limiter.unreserved_in_flight
        )
        await self.functions.recover()
        await self.invoker.load_reservations()
        self.pool.start()
        await self.backend.start()
        await self.provisioned.recover()
        await self.async_events.start()
        await self.mappings.start()
        self.scheduler.start()
        self.ready = True
        log.info(
            "ready",
            extra={
                "endpoint": self.settings.endpoint,
                "data_dir": str(self.settings.data_dir),
                "compiled": compiled.state,
            },
        )

    async def shutdown(self) -> None:
        self.ready = False
        await self.functions.wait_prepared()
        await self.mappings.close()
        await self.scheduler.close()
        await self.async_events.close()
        await self.provisioned.close()
        await self.pool.close()
        await self.backend.close()
        await self.meter.close()
        await self.metrics.close()
        await self.logs.close()
        await self.queues.close()
        await self.async_store.close()
        await self.store.close()
        log.info("stopped")

    async def _health(self, request: Request) -> tuple[int, Headers, bytes]:
        status = 200 if self.ready else 503
        body = {
            "status": "ok" if self.ready else "starting",
            "version": __version__,
            "region": self.settings.region,
            "uptime_s": round(time.time() - self.started_at, 3),
        }
        return status, [(b"content-type", b"application/json")], json.dumps(body).encode()

    async def _code_download(self, request: Request) -> tuple[int, Headers, bytes]:
        """Code.Location: a presigned-style URL that needs no SigV4, like S3's."""
        sha = Path(request.path).name
        query = parse_qs(request.query_string.decode())
        expires = query.get("expires", [""])[0]
        signature = query.get("signature", [""])[0]
        if not self.functions.check_code_url(sha, expires, signature):
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired or is not signed</Message></Error>"
            return 403, [(b"content-type", b"application/xml")], body
        data = self.blobs.read(sha)
        return 200, [(b"content-type", b"application/zip")], data


def make_backend(settings: Settings) -> SandboxBackend:
    """The isolation backend the settings ask for, with this host's interpreters."""
    runtimes = installed_runtimes()
    python = runtimes["python3.11"].interpreter if "python3.11" in runtimes else None
    node = next((r.interpreter for r in runtimes.values() if r.family == "node"), None)
    if settings.sandbox == "process":
        from lambdad.sandbox.process import ProcessBackend

        log.warning(
            "SANDBOX DISABLED: --sandbox process runs functions as plain processes of this user, with no "
            "isolation from the host, the server or each other. Use it for development only."
        )
        return ProcessBackend(str(python or "/usr/bin/python3"), str(node or "node"))
    from lambdad.sandbox.bubblewrap import BubblewrapBackend

    return BubblewrapBackend(
        settings.sandbox_root() / "sandboxes",
        python=str(python or "/usr/bin/python3"),
        node=str(node or "/usr/bin/node"),
        spares=settings.prespawn,
    )
