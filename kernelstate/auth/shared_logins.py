"""Logins kept in the session store, so every process of a deployment sees the same ones.

With ``--session-store`` (SQLite on one machine, Redis across machines), a
login issued by one process is a record in the store, and every process
that shares the store and ``KERNELSTATE_SECRET_KEY`` accepts its cookie;
logout on any process deletes it for all of them.

- **Records**: JSON only, signed with HMAC-SHA256 (:class:`~kernelstate.cluster.signing.Codec`,
  key derived from the server's secret key, purpose = the record's store key,
  so a record copied under another login's key is refused too), under a hash
  of the login id, with a time to live equal to the login's remaining life.
  A record whose signature fails is refused (and logged without its content).
  The refresh token of an OAuth login lives only in this signed record: it is
  never logged.
- **Revocation** deletes the record. A token refresh writes a record back only
  if it still finds it, so a refresh racing a logout on another process does
  not bring the login back (short of the instant between its read and write).
- **Cache bound**: each process keeps a login it has read for at most
  ``cache_ttl_s`` (:data:`LOGIN_CACHE_TTL_S`, 1 s). So a login revoked on one
  process is refused by every other process within that bound; and
  :class:`WatchedLogins` re-reads the logins of this process's open
  WebSockets every ``recheck_s`` (:data:`RECHECK_EVERY_S`, 1 s) and closes
  those of an ended login with ``CloseCode.SIGNED_OUT`` (4411): within
  ``cache_ttl_s + recheck_s`` (about 2 s) plus one store round trip.
- **Outage**: a login read within the cache bound keeps working; past it, a
  request is answered 503 (the caller turns :class:`StoreUnavailableError` into
  a page), never let in unverified. The first failure logs one ERROR line,
  the return one INFO line. After a failure the store is not asked again for
  ``retry_s`` (every call fails at once meanwhile), so an unreachable Redis
  blocks the event loop at most one timeout per ``retry_s``. Open WebSockets
  stay open during an outage (they were verified when they opened); the
  recheck resumes when the store is back.

Thread-safety: calls come from the server's event loop; the engines are
thread-safe and their calls are short (SQLite locally, Redis with 1 s
timeouts), made synchronously because the :class:`LoginRecords` protocol is.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import PeriodicCallback

from ..cluster.errors import TamperedValueError
from ..cluster.signing import Codec
from ..store.base import SessionStore, StoreUnavailableError
from . import DEFAULT_COOKIE_EXPIRY_S
from .identity import User
from .live import Closable, LiveLogins
from .logins import Login

__all__ = ["LOGIN_CACHE_TTL_S", "RECHECK_EVERY_S", "SharedLogins", "WatchedLogins", "login_key"]

log = logging.getLogger(__name__)

LOGIN_CACHE_TTL_S = 1.0    # how long a process trusts a login it read from the store
RECHECK_EVERY_S = 1.0      # how often a process re-reads the logins of its open WebSockets
RETRY_S = 1.0              # after a store failure, how long calls fail at once before the store is tried again
MAX_RECORD_BYTES = 64 * 1024
FORMAT = 1


def login_key(login_id: str) -> str:
    """The store key of a login (a hash: the id is what the cookie carries, and must not sit in the store)."""
    return "kernelstate:login:" + hashlib.sha256(login_id.encode("utf-8")).hexdigest()


class SharedLogins:
    """A :class:`~kernelstate.auth.logins.LoginRecords` in a :class:`SessionStore`, cached briefly per process."""

    def __init__(self, opener: Callable[[], SessionStore], key: bytes, expiry_s: float = DEFAULT_COOKIE_EXPIRY_S, *,
                 cache_ttl_s: float = LOGIN_CACHE_TTL_S, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not expiry_s > 0:
            raise ValueError(f"a login's expiry must be > 0 seconds; got {expiry_s!r}")
        self._opener = opener
        self._store: SessionStore | None = None
        self._pid = 0
        self.description = "(the session store)"   # its address once opened, for log lines
        self.expiry_s = expiry_s
        self.cache_ttl_s = cache_ttl_s
        self.retry_s = retry_s
        self.available = True
        self._codec = Codec(hmac.new(key, b"kernelstate login record", hashlib.sha256).digest())
        self._clock = clock
        self._cache: dict[str, tuple[float, Login]] = {}   # login id -> (read at, login)
        self._down_until = 0.0

    # -- LoginRecords -----------------------------------------------------------------
    def issue(self, user: User, *, refresh_token: str | None = None,
              access_expires_at: float | None = None) -> Login:
        login = Login(secrets.token_urlsafe(32), user, time.time() + self.expiry_s,
                      refresh_token=refresh_token, access_expires_at=access_expires_at)
        self._write(login.id, _login_fields(login), login.expires_at)
        self._remember(login)
        return login

    def get(self, login_id: str) -> Login | None:
        """The live login ``login_id``, or None; raises StoreUnavailableError when it cannot be verified."""
        cached = self._cache.get(login_id)
        if cached is not None and self._clock() - cached[0] < self.cache_ttl_s:
            return None if cached[1].expired() else cached[1]
        self._cache.pop(login_id, None)
        login = self._read(login_id)
        if login is not None:
            self._remember(login)
        return login

    def replace(self, login: Login) -> None:
        """Store an updated record (a refreshed token); a revoked or expired login stays ended."""
        if self._read(login.id) is None:
            return
        self._write(login.id, _login_fields(login), login.expires_at)
        self._remember(login)

    def revoke(self, login_id: str) -> None:
        """End ``login_id`` for every process (the others within the cache bound)."""
        self._cache.pop(login_id, None)
        self._call("deleting", "delete", login_key(login_id))

    def __len__(self) -> int:
        return len(self._cache)

    # -- the store ----------------------------------------------------------------------
    @property
    def store(self) -> SessionStore:
        """The store, opened on first use (and again in a forked child: connections do not survive a fork)."""
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid = self._opener(), os.getpid()
            self.description = self._store.description
        return self._store

    def _remember(self, login: Login) -> None:
        now = self._clock()
        if len(self._cache) > 10_000:   # drop what is stale before growing further
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_ttl_s}
        self._cache[login.id] = (now, login)

    def _read(self, login_id: str) -> Login | None:
        key = login_key(login_id)
        blob = self._call("reading", "get", key)
        if blob is None:
            return None
        try:
            fields = self._codec.loads(key, blob)
            if not isinstance(fields, dict) or fields.get("id") != login_id or fields.get("format") != FORMAT:
                raise TamperedValueError("the record names another login or format")
            login = _login_from(fields)
        except (TamperedValueError, ValueError, TypeError, KeyError) as exc:
            log.warning("refused the login record at %s in %s: %s (not the same KERNELSTATE_SECRET_KEY on every "
                        "process, or the store was changed by hand); that login must sign in again",
                        key, self.description, _reason(exc))
            return None
        return None if login.expired() else login

    def _write(self, login_id: str, fields: dict[str, Any], expires_at: float) -> None:
        ttl_s = expires_at - time.time()
        if ttl_s <= 0:
            self._call("deleting", "delete", login_key(login_id))
            return
        key = login_key(login_id)
        self._call("writing", "put", key, self._codec.dumps(key, fields, MAX_RECORD_BYTES), ttl_s)

    def _call(self, what: str, method: str, *args: Any) -> Any:
        if not self.available and self._clock() < self._down_until:
            raise StoreUnavailableError(f"the login store {self.description} is unreachable (retried "
                                        f"every {self.retry_s:g} s); sign-in is unavailable until it is back")
        try:
            result = getattr(self.store, method)(*args)
        except StoreUnavailableError as exc:
            self._down_until = self._clock() + self.retry_s
            if self.available:
                self.available = False
                log.error("%s (while %s a login record). Logins read in the last %g s keep working; every other request is "
                          "answered 503 until the store is back", exc, what, self.cache_ttl_s)
            raise
        if not self.available:
            self.available = True
            log.info("the login store %s is reachable again: sign-in works again", self.description)
        return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TamperedValueError):
        return "its signature or content does not match"
    return f"it is malformed ({type(exc).__name__})"


def _login_fields(login: Login) -> dict[str, Any]:
    user = login.user
    return {"format": FORMAT, "id": login.id, "expires_at": login.expires_at,
            "user": {"name": user.name, "info": dict(user.info), "access_token": user.access_token},
            "refresh_token": login.refresh_token, "access_expires_at": login.access_expires_at}


def _login_from(fields: dict[str, Any]) -> Login:
    user = fields["user"]
    return Login(str(fields["id"]), User(user["name"], dict(user["info"]), user["access_token"]),
                 float(fields["expires_at"]), refresh_token=fields["refresh_token"],
                 access_expires_at=fields["access_expires_at"])


class WatchedLogins(LiveLogins):
    """:class:`LiveLogins` over shared records that also closes WebSockets of logins ended by another process.

    While this process has open WebSockets under some login, a periodic check
    (every ``recheck_s``, on the event loop of the first tracked connection)
    re-reads those logins and closes the connections of any that ended
    (logout elsewhere, expiry) with ``CloseCode.SIGNED_OUT``. The check stops
    when no connection is tracked, and starts again with the next one.
    """

    def __init__(self, records: SharedLogins, recheck_s: float = RECHECK_EVERY_S) -> None:
        super().__init__(records)
        self.shared = records
        self.recheck_s = recheck_s
        self._check: PeriodicCallback | None = None

    def track(self, login_id: str, connection: Closable) -> None:
        super().track(login_id, connection)
        if self._check is None:
            self._check = PeriodicCallback(self.recheck, self.recheck_s * 1000)
            self._check.start()

    def recheck(self) -> None:
        """Close the tracked connections of logins that ended; keep them while the store is unreachable."""
        for login_id in self.tracked_logins():
            try:
                if self.shared.get(login_id) is None:
                    log.info("a login with open WebSockets here ended (signed out elsewhere, or expired): "
                             "closing them")
                    self.revoke(login_id)
            except StoreUnavailableError:
                return   # logged once per outage by SharedLogins; checked again next time
        if not self.tracked_logins() and self._check is not None:
            self._check.stop()
            self._check = None

