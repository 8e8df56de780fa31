"""Endpoint, region and credentials, resolved the way the AWS CLI does, plus a local fallback.

- endpoint: ``--endpoint-url``, else ``LAMBDAD_ENDPOINT``, else ``AWS_ENDPOINT_URL``, else
  http://localhost:9000 (``lambdad serve``'s default).
- region: ``--region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1.
- credentials: botocore's chain (environment, ``--profile``, ~/.aws files, SSO, processes; not the
  EC2 instance metadata service, which would only add a network timeout on a laptop), and when it
  finds none, the pair ``lambdad serve`` wrote to ``<data dir>/credentials.json``, so a local
  developer needs no setup at all.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdad.client.errors import EXIT_UNREACHABLE, CliError

DEFAULT_ENDPOINT = "http://localhost:9000"
DEFAULT_REGION = "us-east-1"
DEFAULT_DATA_DIR = Path(".lambdad")
#: Seconds to wait for a response: above Lambda's longest timeout (900 s), so invokes can finish.
READ_TIMEOUT_S = 960


def connection_parser() -> argparse.ArgumentParser:
    """The options every command that talks to the server shares (an argparse parent)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--endpoint-url",
        dest="endpoint_url",
        help=f"lambdad's URL (default: $LAMBDAD_ENDPOINT, $AWS_ENDPOINT_URL or {DEFAULT_ENDPOINT})",
    )
    group.add_argument(
        "--region", help=f"region to sign for (default: $AWS_DEFAULT_REGION or {DEFAULT_REGION})"
    )
    group.add_argument("--profile", help="a named profile from ~/.aws/credentials or ~/.aws/config")
    add_data_dir(group)
    return parent


def add_data_dir(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--data-dir",
        dest="data_dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the server's data directory, for its credentials.json when no AWS credentials are "
        "configured (default %(default)s)",
    )


def resolve_endpoint(flag: str | None, environ: Mapping[str, str]) -> str:
    endpoint = flag or environ.get("LAMBDAD_ENDPOINT") or environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT
    if not endpoint.startswith(("http://", "https://")):
        raise CliError(f"endpoint {endpoint!r} must be a URL such as {DEFAULT_ENDPOINT}", 2)
    return endpoint.rstrip("/")


def resolve_region(flag: str | None, environ: Mapping[str, str]) -> str:
    return flag or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_of(args: argparse.Namespace) -> str:
    """The endpoint a command's arguments name (for error messages); never raises."""
    try:
        return resolve_endpoint(getattr(args, "endpoint_url", None), os.environ)
    except CliError:
        return str(getattr(args, "endpoint_url", DEFAULT_ENDPOINT))


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: Where they came from ("env", "shared-credentials-file", "lambdad-data-dir", ...).
    source: str = "env"


def local_keys(data_dir: Path) -> Keys | None:
    """The pair ``lambdad serve`` created in its data directory, when readable."""
    path = data_dir / "credentials.json"
    try:
        stored = json.loads(path.read_text())
        return Keys(stored["access_key_id"], stored["secret_access_key"], source=str(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read lambdad's keys from {path}: {exc}", EXIT_UNREACHABLE) from exc


def _chain_keys(session: Any) -> Keys | None:
    from botocore.exceptions import BotoCoreError

    resolver = session.get_component("credential_provider")
    resolver.remove("iam-role")
    try:
        found = resolver.load_credentials()
    except BotoCoreError as exc:
        raise CliError(f"cannot load AWS credentials: {exc}", EXIT_UNREACHABLE) from exc
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    return Keys(frozen.access_key, frozen.secret_key, frozen.token, source=found.method)


@dataclass
class Api:
    """botocore clients for one endpoint, region and key pair."""

    endpoint: str
    region: str
    keys: Keys
    _session: Any = field(repr=False)

    def client(self, service: str) -> Any:
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=READ_TIMEOUT_S,
            user_agent_extra="lambdad-cli",
        )
        return self._session.create_client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.keys.access_key_id,
            aws_secret_access_key=self.keys.secret_access_key,
            aws_session_token=self.keys.session_token,
            config=config,
        )


def connect(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Api:
    """An ``Api`` from a command's connection options and the environment."""
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    env = os.environ if environ is None else environ
    endpoint = resolve_endpoint(args.endpoint_url, env)
    try:
        session = botocore.session.Session(profile=args.profile)
        keys = _chain_keys(session) or local_keys(args.data_dir)
    except ProfileNotFound as exc:
        raise CliError(f"{exc}: check ~/.aws/config and ~/.aws/credentials", EXIT_UNREACHABLE) from exc
    if keys is None:
        raise CliError(
            f"no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --profile), or run "
            f"from the directory where `lambdad serve` keeps {args.data_dir / 'credentials.json'} "
            "(or pass --data-dir)",
            EXIT_UNREACHABLE,
        )
    return Api(endpoint, resolve_region(args.region, env), keys, session)
