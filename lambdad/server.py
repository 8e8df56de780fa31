"""The composition root: builds the store, the services and the HTTP app from Settings."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import parse_qs

from lambdad import __version__
from lambdad.config import Settings
from lambdad.functions.api import function_handlers
from lambdad.functions.arns import Arns
from lambdad.functions.service import AccountLimits, FunctionService
from lambdad.http import auth, awsmodel
from lambdad.http.app import App, Headers, Request
from lambdad.observe.logstore import LogStore
from lambdad.observe.metering import Meter
from lambdad.observe.wiring import install_logs
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
        self.blobs = BlobStore(data)
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
        self.started_at = time.time()
        self.ready = False

    def build_app(self) -> App:
        operations = awsmodel.build_operations(awsmodel.load_model("lambda"))
        handlers = function_handlers(self.functions)
        app = App(
            lambda_operations=operations,
            lambda_handlers=handlers,
            authenticate=auth.SigV4Authenticator(self.credentials, self.settings.region),
            raw_routes={"/health": self._health, "/_lambdad/code": self._code_download},
            on_startup=self.startup,
            on_shutdown=self.shutdown,
        )
        install_logs(app, self.logs)
        return app

    async def startup(self) -> None:
        self.blobs.clean_temp()
        await self.logs.start()
        self.meter.start()
        await self.functions.recover()
        self.ready = True
        log.info("ready", extra={"endpoint": self.settings.endpoint, "data_dir": str(self.settings.data_dir)})

    async def shutdown(self) -> None:
        self.ready = False
        await self.functions.wait_prepared()
        await self.meter.close()
        await self.logs.close()
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
