"""SessionLogin on its own, in virtual time (FakeClock): a session bound to a login takes the tokens the
provider refreshes through Auth (reads still recorded), runs ``ks.state.on_access_token_refreshed``
callbacks, refreshes once per login however many sessions ask, closes its connections SIGNED_OUT when
the provider refuses, and its timer ends with the session. The real provider and server are in
test_live_refresh.py."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kernelstate as ks
from kernelstate.auth.access import Auth
from kernelstate.auth.identity import User
from kernelstate.auth.live import LiveLogins
from kernelstate.auth.logins import Login, LoginStore
from kernelstate.auth.session_login import RETRY_S, SessionLogin, refresh_delay
from kernelstate.context import activate
from kernelstate.endpoint import CloseCode
from kernelstate.request import RequestInfo
from kernelstate.session import Session
from kernelstate.testing import FakeClock

LIFETIME_S = 60.0


class NumberedTokens:
    """A LoginProvider whose refresh hands out token-1, token-2, ... (or refuses, like a provider that
    no longer honours the refresh token)."""

    name = "numbered"

    def __init__(self) -> None:
        self.refreshes = 0
        self.refuse = False
        self.extend = True    # False: a new token with the same expiry (a provider that does not extend it)

    def handlers(self, prefix: str) -> list[Any]:
        return []

    def login_url(self, prefix: str, next_url: str) -> str:
        return prefix + "/login"

    async def refresh(self, login: Login) -> Login | None:
        await asyncio.sleep(0.01)    # a round trip: concurrent askers overlap
        if self.refuse:
            return None
        self.refreshes += 1
        user = User(login.user.name, {**login.user.info, "n": self.refreshes}, f"token-{self.refreshes}")
        return login.with_user(user, access_expires_at=time.time() + LIFETIME_S if self.extend
                               else login.access_expires_at)

    def logout_redirect(self, login: Login) -> str | None:
        return None


class Connection:
    def __init__(self) -> None:
        self.closed: list[tuple[int | None, str | None]] = []

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed.append((code, reason))


class Records(LoginStore):
    """Login records whose store can be down (a shared store's StoreUnavailableError is a ConnectionError)."""

    down = False

    def get(self, login_id: str) -> Login | None:
        if self.down:
            raise ConnectionError("the login store is down")
        return super().get(login_id)


def run(scenario: Callable[[Auth, NumberedTokens, FakeClock], Awaitable[None]]) -> None:
    provider = NumberedTokens()
    logins = LiveLogins(Records())
    asyncio.run(scenario(Auth(provider, logins, prefix="", cookie_expiry_s=3600), provider, FakeClock()))


def sign_in(auth: Auth) -> Login:
    return auth.logins.issue(User("alice", {"sub": "alice"}, "token-0"), refresh_token="r",
                             access_expires_at=time.time() + LIFETIME_S)


def new_session(login: Login, clock: FakeClock) -> Session:
    user = login.user
    info = RequestInfo(user=user.name, user_info=user.claims(), access_token=user.access_token)
    return Session(info, loop=asyncio.get_running_loop(), clock=clock)


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


def test_refresh_delay() -> None:
    assert refresh_delay(1000 + 3600, 1000) == 3600 - 30     # 30 s before a long-lived token expires
    assert refresh_delay(1000 + 40, 1000) == 20              # at half the life of a short one
    assert refresh_delay(1000 + 1, 1000) == 1.0              # never sooner than a second
    assert refresh_delay(1000 - 5, 1000) == 1.0              # already expired: at once, but not in a loop


def test_a_session_takes_the_refreshed_token_before_it_expires() -> None:
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        session = new_session(login, clock)
        seen: list[tuple[str | None, str | None]] = []
        with activate(session):
            ks.state.on_access_token_refreshed(lambda token: seen.append((token, ks.state.access_token)))
        SessionLogin.of(session).bind(auth, login, Connection())
        assert session.request.reads == frozenset(), "binding is not a read"
        clock.advance(1000 * (LIFETIME_S - 30) - 500)
        await asyncio.sleep(0.05)
        assert provider.refreshes == 0, "not yet: 30 s before expiry"
        clock.advance(1000)
        await until(lambda: bool(seen))
        assert seen == [("token-1", "token-1")]
        assert session.request.reads == {("access_token", None)}, "the callback's read is recorded"
        with activate(session):
            assert ks.state.access_token == "token-1" and ks.state.user_info["n"] == 1
        assert auth.logins.get(login.id).user.access_token == "token-1"   # type: ignore[union-attr]
        clock.advance(1000 * (LIFETIME_S - 30))    # and again before the new token expires
        await until(lambda: len(seen) == 2)
        assert seen[-1] == ("token-2", "token-2")
        session.destroy()

    run(scenario)


def test_sessions_of_one_login_refresh_it_once() -> None:
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        sessions = [new_session(login, clock) for _ in range(3)]
        for session in sessions:
            SessionLogin.of(session).bind(auth, login, Connection())
        clock.advance(1000 * (LIFETIME_S - 29))
        await until(lambda: all(s.login is not None and s.login.refreshes == 1 for s in sessions))
        assert provider.refreshes == 1
        for session in sessions:
            with activate(session):
                assert ks.state.access_token == "token-1"
            session.destroy()

    run(scenario)


def test_a_refused_refresh_signs_the_session_out() -> None:
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        session, connection = new_session(login, clock), Connection()
        SessionLogin.of(session).bind(auth, login, connection)
        provider.refuse = True
        clock.advance(1000 * LIFETIME_S)
        await until(lambda: bool(connection.closed))
        assert connection.closed == [(CloseCode.SIGNED_OUT, "signed out: sign in again")]
        assert auth.logins.get(login.id) is None, "the login ended"
        assert clock.pending == 0, "no more refreshes"
        session.destroy()

    run(scenario)


def test_the_timer_ends_with_the_session() -> None:
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        session = new_session(login, clock)
        SessionLogin.of(session).bind(auth, login, Connection())
        assert clock.pending == 1
        session.destroy()
        assert clock.pending == 0
        clock.advance(1000 * 3 * LIFETIME_S)
        await asyncio.sleep(0.05)
        assert provider.refreshes == 0

    run(scenario)


def test_a_refresh_that_does_not_extend_the_token_is_not_repeated() -> None:
    """A provider answering with the same expiry would otherwise be asked again every second."""
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        session = new_session(login, clock)
        provider.extend = False
        SessionLogin.of(session).bind(auth, login, Connection())
        clock.advance(1000 * LIFETIME_S)
        await until(lambda: provider.refreshes == 1)
        await asyncio.sleep(0.05)
        assert clock.pending == 0
        session.destroy()

    run(scenario)


def test_an_unreachable_login_store_is_tried_again() -> None:
    async def scenario(auth: Auth, provider: NumberedTokens, clock: FakeClock) -> None:
        login = sign_in(auth)
        session = new_session(login, clock)
        records = auth.logins.records    # type: ignore[attr-defined]
        SessionLogin.of(session).bind(auth, login, Connection())
        records.down = True
        clock.advance(1000 * LIFETIME_S)
        await until(lambda: clock.pending == 1)      # the retry
        assert provider.refreshes == 0
        records.down = False
        clock.advance(1000 * RETRY_S)
        await until(lambda: provider.refreshes == 1)
        with activate(session):
            assert ks.state.access_token == "token-1"
        session.destroy()

    run(scenario)
