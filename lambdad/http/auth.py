"""The server's access keys and the SigV4 check every API request passes."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from lambdad.http import sigv4
from lambdad.http.app import Request
from lambdad.http.errors import InvalidSignatureException

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    #: True when lambdad generated the pair on this start (so the CLI prints how to use it).
    created: bool = False


def load_or_create(data_dir: Path, access_key_id: str | None, secret: str | None) -> Credentials:
    """Keys from the operator when given, else the pair stored in the data directory (made once)."""
    if access_key_id is not None and secret is not None:
        return Credentials(access_key_id, secret)
    path = data_dir / "credentials.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return Credentials(stored["access_key_id"], stored["secret_access_key"])
    creds = Credentials(
        "LKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
        secrets.token_urlsafe(30)[:40],
        created=True,
    )
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    return creds


def url_signing_key(data_dir: Path) -> bytes:
    """A server-only secret for presigned code-download URLs; never leaves the data directory."""
    path = data_dir / "url-signing.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


class SigV4Authenticator:
    """Checks a request's signature against the server's keys and region."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._keys = {credentials.access_key_id: credentials.secret_access_key}
        self._region = region

    def __call__(self, request: Request) -> None:
        caller = sigv4.verify_request(
            request.method,
            request.raw_path,
            request.query_string,
            request.raw_headers,
            request.body,
            self._keys.get,
        )
        if caller.region != self._region:
            raise InvalidSignatureException(
                f"Credential should be scoped to a valid region, not '{caller.region}'. "
                f"This lambdad serves region '{self._region}'."
            )
