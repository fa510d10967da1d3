"""A session's login, kept fresh while the session lives.

``ks.state.access_token`` and ``ks.state.user_info`` start as the page's
request had them. The login record itself is refreshed on every page,
WebSocket and reconnect (:meth:`~kernelstate.auth.access.Auth.login_of`);
:class:`SessionLogin` brings that into an open session:

- when a WebSocket attaches to a session (its first connection or a
  reconnect; the login gate calls :func:`bind_connection`), the session is
  bound to that connection's login and takes its claims and access token,
  which the gate has just refreshed if they had expired;
- a timer on the session's loop refreshes the login shortly before its access
  token expires (:meth:`~kernelstate.auth.access.Auth.fresh_login`: through
  the provider, once per login however many sessions ask), the session takes
  the new values and ``ks.state.on_access_token_refreshed`` callbacks run;
- a login that ended (its refresh refused by the provider, or revoked) closes
  the session's WebSockets with ``CloseCode.SIGNED_OUT``: the page tells the
  user to sign in again;
- the timer belongs to the session's scheduler and ends with the session.

Reads still go through the session's
:class:`~kernelstate.request.RecordedRequest` and are recorded for the reuse
cache. Everything here runs on the session's loop (the server's).
"""
from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from weakref import WeakSet

from ..endpoint import CloseCode
from ..host import InProcessHost
from ..scheduling import callback_name

if TYPE_CHECKING:
    from ..clock import TimerHandle
    from ..session import Session
    from .access import Auth
    from .logins import Login

log = logging.getLogger(__name__)
REFRESH_LEEWAY_S = 30.0    # refresh this long before the access token expires (as Login.access_expired)
MIN_REFRESH_DELAY_S = 1.0  # never sooner than this after the last refresh (a token that lives < 2 s)
RETRY_S = 10.0             # after the login store could not be reached
SIGNED_OUT_REASON = "signed out: sign in again"
RefreshedCallback = Callable[[str | None], Any]


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def refresh_delay(expires_at: float, now: float) -> float:
    """Seconds from ``now`` until a token expiring at ``expires_at`` is refreshed.

    ``REFRESH_LEEWAY_S`` before it expires, or at half its remaining life for a
    short-lived token, and at least ``MIN_REFRESH_DELAY_S``.
    """
    remaining = expires_at - now
    return max(remaining - REFRESH_LEEWAY_S, remaining / 2, MIN_REFRESH_DELAY_S)


class SessionLogin:
    """The login one session lives under; :meth:`of` makes or finds it (``session.login``)."""

    def __init__(self, session: Session) -> None:
        self._session = weakref.ref(session)
        self.auth: Auth | None = None
        self.login_id: str | None = None
        self.callbacks: list[RefreshedCallback] = []
        self.refreshes = 0            # access tokens taken after the first (by the timer or a reconnect)
        self._connections: WeakSet[Closable] = WeakSet()
        self._timer: TimerHandle | None = None
        self._due: float | None = None   # the access token expiry the timer refreshes

    @classmethod
    def of(cls, session: Session) -> SessionLogin:
        if session.login is None:
            session.login = cls(session)
            session.scheduler.own(session.login)   # cancel() when the session is destroyed
        return session.login

    def on_refreshed(self, callback: RefreshedCallback) -> None:
        if callback not in self.callbacks:
            self.callbacks.append(callback)

    def bind(self, auth: Auth, login: Login, connection: Closable) -> None:
        """Live under ``login`` (the one ``connection`` was opened with): take its values, refresh them in time."""
        self.auth, self.login_id = auth, login.id
        self._connections.add(connection)
        self._take(login)
        self._schedule(login.access_expires_at)

    def cancel(self) -> None:
        """Stop refreshing (the session ends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.auth = None
        self.login_id = None

    # -- the refresh ---------------------------------------------------------------------
    def _schedule(self, expires_at: float | None, delay_s: float | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session = self._session()
        if expires_at is None or session is None or not session.scheduler.alive:
            return
        self._due = expires_at
        if delay_s is None:
            delay_s = refresh_delay(expires_at, time.time())
        self._timer = session.scheduler.call_later(1000 * delay_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        session = self._session()
        if session is None or self.auth is None or self.login_id is None:
            return
        session.scheduler.spawn(self._refresh(self.auth, self.login_id, self._due), "access token refresh")

    async def _refresh(self, auth: Auth, login_id: str, due: float | None) -> None:
        try:
            login = await auth.fresh_login(login_id, expiring_by=due)
        except ConnectionError as exc:   # the login store is unreachable (StoreUnavailableError): try again
            log.warning("session %s: its login could not be read to refresh its access token (%s); trying "
                        "again in %.0f s", self._session_id(), exc, RETRY_S)
            if login_id == self.login_id:
                self._schedule(due, RETRY_S)
            return
        except Exception:
            log.exception("refreshing the access token of a session's login failed (session=%s); the next "
                          "reconnect tries again", self._session_id())
            return
        if login_id != self.login_id:   # rebound (a reconnect under another login) or ended meanwhile
            return
        if login is None:
            self._signed_out()
            return
        self._take(login)
        if due is not None and login.access_expires_at is not None and login.access_expires_at <= due:
            log.warning("session %s: the provider's refresh did not extend the access token's expiry; it is "
                        "not refreshed again before the next reconnect", self._session_id())
            return
        self._schedule(login.access_expires_at)

    def _take(self, login: Login) -> None:
        session = self._session()
        if session is None:
            return
        user = login.user
        if not session.request.login_refreshed(user.claims(), user.access_token):
            return
        self.refreshes += 1
        log.debug("session %s took a refreshed access token", session.id)
        for callback in list(self.callbacks):
            session.scheduler.invoke(functools.partial(callback, user.access_token),
                                     f"on_access_token_refreshed callback {callback_name(callback)}")

    def _signed_out(self) -> None:
        connections = list(self._connections)
        log.info("session %s: its login ended (the access token could not be refreshed): closing its "
                 "%d WebSocket(s)", self._session_id(), len(connections))
        self.auth = None
        self.login_id = None
        for connection in connections:
            connection.close(CloseCode.SIGNED_OUT, SIGNED_OUT_REASON)

    def _session_id(self) -> str | None:
        session = self._session()
        return session.id if session is not None else None


def bind_connection(auth: Auth, login_id: str, host: object, connection: Closable) -> None:
    """A WebSocket opened under ``login_id`` attached to ``host``'s session: keep that session's login fresh.

    If the login was revoked while the WebSocket was opening, it is closed with ``SIGNED_OUT`` at once.
    """
    try:
        login = auth.logins.get(login_id)
    except ConnectionError as exc:   # the login store is unreachable: the gate has just verified the login
        log.warning("a WebSocket's session is not kept fresh: its login could not be read (%s)", exc)
        return
    if login is None or login.expired():
        connection.close(CloseCode.SIGNED_OUT, SIGNED_OUT_REASON)
        return
    if isinstance(host, InProcessHost) and not host.session.destroyed:
        SessionLogin.of(host.session).bind(auth, login, connection)
