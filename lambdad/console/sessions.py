"""Console sessions: sign-in by access key or one-time link, an in-memory token per browser, CSRF tokens.

Sessions live only in memory: a restart signs everyone out, which is the safe default for a local console.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

#: How long a session lasts without use, and how long a sign-in link is valid.
SESSION_IDLE_S = 12 * 3600
LINK_TTL_S = 600
MAX_SESSIONS = 1000


@dataclass
class Session:
    token: str
    csrf: str
    expires: float


class Sessions:
    """Session tokens and one-time sign-in links, checked in constant time."""

    def __init__(self, access_key_id: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._key = access_key_id
        self._secret = secret
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._links: dict[str, float] = {}

    def sign_in(self, access_key_id: str, secret: str) -> Session | None:
        """A new session when the key pair is the server's, else None."""
        key_ok = hmac.compare_digest(access_key_id.encode(), self._key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self._secret.encode())
        return self._new() if key_ok and secret_ok else None

    def new_link(self) -> str:
        """A sign-in token valid once, for ``LINK_TTL_S`` seconds."""
        token = secrets.token_urlsafe(32)
        self._links[token] = self._clock() + LINK_TTL_S
        return token

    def redeem_link(self, token: str) -> Session | None:
        expires = self._links.pop(token, None)
        if expires is None or expires < self._clock():
            return None
        return self._new()

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token``; each use extends it."""
        if not token:
            return None
        session = self._sessions.get(token)
        now = self._clock()
        if session is None or session.expires < now:
            self._sessions.pop(token or "", None)
            return None
        session.expires = now + SESSION_IDLE_S
        return session

    def sign_out(self, token: str) -> None:
        self._sessions.pop(token, None)

    def _new(self) -> Session:
        now = self._clock()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires >= now}
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.expires)
                del self._sessions[oldest.token]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + SESSION_IDLE_S)
        self._sessions[session.token] = session
        return session


def csrf_ok(session: Session, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(header.encode(), session.csrf.encode())
