"""The ``lambdad`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from lambdad import __version__
from lambdad.client import deploy, functions, invoke, logs, url, usage
from lambdad.client.errors import run_guarded
from lambdad.config import Settings, SettingsError, credentials_from_env

_DESCRIPTION = """\
lambdad: a self-hosted serverless platform, wire-compatible with AWS Lambda.

Start the server, then point any AWS SDK or the AWS CLI at it:
  lambdad serve
  aws --endpoint-url http://localhost:9000 lambda list-functions
"""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the server's own logs are structured."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message",
        "asctime",
        "color_message",
    }

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.Formatter.converter = __import__("time").gmtime


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambdad", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lambdad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the lambdad server (API, invoker, logs) in this process",
        description="Run the whole lambdad service in one process. Stop it with Ctrl-C or SIGTERM.",
    )
    defaults = Settings()
    serve.add_argument("--host", default=defaults.host, help="interface to listen on (default %(default)s)")
    serve.add_argument("--port", type=int, default=defaults.port, help="TCP port (default %(default)s)")
    serve.add_argument(
        "--data-dir", type=Path, default=defaults.data_dir, help="where state lives (default %(default)s)"
    )
    serve.add_argument("--region", default=defaults.region, help="region in ARNs (default %(default)s)")
    serve.add_argument(
        "--account-id", default=defaults.account_id, help="12-digit account id in ARNs (default %(default)s)"
    )
    serve.add_argument(
        "--sandbox",
        choices=("bubblewrap", "process"),
        default=defaults.sandbox,
        help="isolation backend; 'process' has NO isolation and is for development only (default %(default)s)",
    )
    serve.add_argument(
        "--max-concurrency",
        type=int,
        default=defaults.max_concurrency,
        help="account-wide concurrent executions (default %(default)s)",
    )
    serve.add_argument(
        "--prespawn",
        type=int,
        default=defaults.prespawn,
        help="generic sandboxes started ahead of demand to make cold starts fast (default %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout_s,
        help="seconds before an idle warm environment is reaped (default %(default)s)",
    )
    serve.add_argument(
        "--async-retry-delay",
        type=float,
        default=defaults.async_retry_delay_s,
        metavar="SECONDS",
        help="delay before the first retry of a failed async invocation; the next waits twice as long "
        "(default %(default)s)",
    )
    serve.add_argument(
        "--metrics-retention-days",
        type=float,
        default=defaults.metrics_retention_days,
        help="days of metrics kept (default %(default)s)",
    )
    serve.add_argument(
        "--runtime-dir",
        type=Path,
        default=None,
        help="scratch dir sandboxes are built from; must be traversable by the sandbox user "
        "(default /run/lambdad/<hash of data dir>)",
    )
    serve.add_argument(
        "--log-level", default=defaults.log_level, choices=("debug", "info", "warning", "error")
    )
    for command in (deploy, invoke, logs, functions, usage, url):
        command.register(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    key, secret = credentials_from_env()
    metrics_token = os.environ.get("LAMBDAD_METRICS_TOKEN")
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        region=args.region,
        account_id=args.account_id,
        access_key_id=key,
        secret_access_key=secret,
        sandbox=args.sandbox,
        max_concurrency=args.max_concurrency,
        idle_timeout_s=args.idle_timeout,
        prespawn=args.prespawn,
        async_retry_delay_s=args.async_retry_delay,
        log_level=args.log_level,
        metrics_retention_days=args.metrics_retention_days,
        metrics_token=metrics_token,
        runtime_dir=args.runtime_dir,
    )


def _print_credentials_help(settings: Settings, key_id: str, secret: str, created: bool) -> None:
    where = settings.data_dir / "credentials.json"
    intro = f"Created an access key pair in {where}." if created else f"Access keys: {where}."
    print(
        f"{intro} Use it with the AWS CLI or SDKs:\n"
        f"  export AWS_ACCESS_KEY_ID={key_id}\n"
        f"  export AWS_SECRET_ACCESS_KEY={secret}\n"
        f"  export AWS_DEFAULT_REGION={settings.region}\n"
        f"  aws --endpoint-url {settings.endpoint} lambda list-functions\n",
        file=sys.stderr,
        flush=True,
    )


def _raise_fd_limit() -> None:
    """Each execution environment holds a few descriptors (socket, pipe, cgroup file): a thousand
    environments need more than the common soft limit of 1024, so use the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def serve(settings: Settings) -> int:
    from lambdad.http import server as http_server

    _raise_fd_limit()

    from lambdad.sandbox.leftovers import RuntimeDirInUse
    from lambdad.server import Server

    try:
        server = Server(settings)
    except RuntimeDirInUse as exc:
        print(f"lambdad: error: {exc}", file=sys.stderr)
        return 1
    if settings.access_key_id is None:
        creds = server.credentials
        _print_credentials_help(settings, creds.access_key_id, creds.secret_access_key, creds.created)
    print(
        f"Web console (one-time sign-in link, valid 10 minutes): {server.console.sign_in_url(settings.endpoint)}",
        file=sys.stderr,
        flush=True,
    )
    # SIGTERM and SIGINT stop it gracefully; a clean shutdown exits 0.
    return http_server.run(server.build_app(), settings.host, settings.port)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "serve":
        _setup_logging(args.log_level)
        try:
            settings = _settings(args)
        except SettingsError as exc:
            parser.error(str(exc))
        return serve(settings)
    return run_guarded(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
