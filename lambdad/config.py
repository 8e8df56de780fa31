"""Settings: one typed object, resolved once from flags and the environment, then passed down.

Nothing else in lambdad reads the process environment for configuration.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")


class SettingsError(ValueError):
    """A setting has a value lambdad cannot run with; the message says what to do."""


@dataclass(frozen=True)
class Settings:
    """Everything lambdad's server needs to know, with the default and meaning of each key."""

    #: Interface to listen on. Default 127.0.0.1: nothing outside this host reaches the API.
    host: str = "127.0.0.1"
    #: TCP port of the API, the code-download URLs and function URLs.
    port: int = 9000
    #: Where metadata (SQLite), code blobs, logs and keys live.
    data_dir: Path = Path(".lambdad")
    #: Region placed in every ARN; requests signed for another region are refused as AWS does.
    region: str = "us-east-1"
    #: Twelve-digit account id placed in every ARN.
    account_id: str = "000000000000"
    #: Access key pair clients sign with; None means "create one in the data directory".
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    #: Isolation backend: "bubblewrap" (namespaces + cgroups) or "process" (development only).
    sandbox: str = "bubblewrap"
    #: Account-wide concurrent executions (AWS's default quota is 1000).
    max_concurrency: int = 1000
    #: Generic sandboxes kept started ahead of demand, so a cold start only mounts code and imports
    #: the handler (same isolation as any sandbox). 0 turns it off.
    prespawn: int = 4
    #: Seconds an idle warm environment is kept before it is reaped.
    idle_timeout_s: float = 600.0
    #: Seconds before the first retry of a failed asynchronous invocation; the second waits twice as
    #: long (AWS: about one and two minutes).
    async_retry_delay_s: float = 60.0
    #: Log level of the server's own structured logs.
    log_level: str = "info"
    #: Days of CloudWatch-compatible metrics kept (AWS keeps 1-minute data for 15 days).
    metrics_retention_days: float = 15.0
    #: Bearer token that /metrics (Prometheus) requires; None serves it to loopback clients only.
    metrics_token: str | None = field(default=None, repr=False)
    #: Scratch space sandboxes are built from (unpacked code, per-sandbox dirs, the agent). Every
    #: directory on its path must be traversable by the unprivileged sandbox user, which a data
    #: directory under /root or a 0700 temp dir is not. None: /run/lambdad/<hash of data dir>.
    runtime_dir: Path | None = None

    def __post_init__(self) -> None:
        if not _REGION.match(self.region):
            raise SettingsError(f"--region {self.region!r} is not an AWS region name such as us-east-1")
        if not _ACCOUNT.match(self.account_id):
            raise SettingsError(f"--account-id {self.account_id!r} must be 12 digits, such as 000000000000")
        if not 0 < self.port < 65536:
            raise SettingsError(f"--port {self.port} must be between 1 and 65535")
        if self.sandbox not in ("bubblewrap", "process"):
            raise SettingsError(f"--sandbox {self.sandbox!r} must be 'bubblewrap' or 'process'")
        if self.async_retry_delay_s < 0:
            raise SettingsError("--async-retry-delay must be 0 or more seconds")
        if self.max_concurrency < 1:
            raise SettingsError("--max-concurrency must be at least 1")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise SettingsError(
                "set both LAMBDAD_ACCESS_KEY_ID and LAMBDAD_SECRET_ACCESS_KEY, or neither "
                "(lambdad then creates a key pair in the data directory)"
            )

    def sandbox_root(self) -> Path:
        """The runtime directory: reproducible scratch state, safe to delete while lambdad is stopped."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        tag = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
        base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
        return base / "lambdad" / tag

    @property
    def endpoint(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def credentials_from_env(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The server's key pair when the operator gave one through the environment."""
    env = os.environ if environ is None else environ
    return env.get("LAMBDAD_ACCESS_KEY_ID"), env.get("LAMBDAD_SECRET_ACCESS_KEY")
