"""Console sessions: key checks, one-time links, expiry and CSRF, on a fake clock."""

from __future__ import annotations

from lambdad.console.sessions import LINK_TTL_S, SESSION_IDLE_S, Sessions, csrf_ok


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_sign_in_needs_the_exact_key_pair() -> None:
    sessions = Sessions("KEY", "SECRET", Clock())
    assert sessions.sign_in("KEY", "wrong") is None
    assert sessions.sign_in("OTHER", "SECRET") is None
    session = sessions.sign_in("KEY", "SECRET")
    assert session is not None and sessions.get(session.token) is session
    assert session.token != session.csrf


def test_a_link_signs_in_once_and_expires() -> None:
    clock = Clock()
    sessions = Sessions("KEY", "SECRET", clock)
    token = sessions.new_link()
    assert sessions.redeem_link(token) is not None
    assert sessions.redeem_link(token) is None
    late = sessions.new_link()
    clock.now += LINK_TTL_S + 1
    assert sessions.redeem_link(late) is None
    assert sessions.redeem_link("made-up") is None


def test_sessions_expire_when_idle_and_on_sign_out() -> None:
    clock = Clock()
    sessions = Sessions("KEY", "SECRET", clock)
    first = sessions.sign_in("KEY", "SECRET")
    second = sessions.sign_in("KEY", "SECRET")
    assert first is not None and second is not None
    clock.now += SESSION_IDLE_S - 1
    assert sessions.get(first.token) is first
    clock.now += SESSION_IDLE_S + 1
    assert sessions.get(second.token) is None
    sessions.sign_out(first.token)
    assert sessions.get(first.token) is None
    assert sessions.get(None) is None


def test_csrf_token_must_match() -> None:
    session = Sessions("KEY", "SECRET", Clock()).sign_in("KEY", "SECRET")
    assert session is not None
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, session.token)
