"""Logins kept on the server, and the signed cookie that names one.

The login cookie carries only a login id, signed with Tornado's
``set_signed_cookie`` (HttpOnly, SameSite=Lax, Secure under TLS). Everything
else, the user, the expiry, a refresh token, is the :class:`Login` record in
a :class:`LoginRecords` store on the server, so ``revoke`` (logout) ends a
login for every copy of its cookie. :class:`LoginStore` keeps the records in
this process's memory; :class:`~kernelstate.auth.shared_logins.SharedLogins`
keeps them in the session store shared by a deployment's processes.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from tornado.web import RequestHandler

from . import DEFAULT_COOKIE_EXPIRY_S
from .identity import User

COOKIE_NAME = "kernelstate-login"


def cookie_secret(key: bytes) -> str:
    """Tornado's ``cookie_secret`` for a server whose signing key is ``key`` (derived, never the key itself)."""
    return hmac.new(key, b"kernelstate login cookie", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Login:
    """One login: who, until when, and what an OAuth provider needs to refresh it.

    Attributes:
        id: the random login id the cookie carries.
        user: who logged in.
        expires_at: UNIX time at which the login ends (the cookie's expiry).
        refresh_token: an OAuth refresh token, kept on the server only.
        access_expires_at: UNIX time at which ``user.access_token`` expires, if known.
    """

    id: str
    user: User
    expires_at: float
    refresh_token: str | None = field(default=None, repr=False)   # a secret: never in a log line
    access_expires_at: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def access_expired(self, now: float | None = None, leeway_s: float = 30.0) -> bool:
        """Whether the access token has expired (or will within ``leeway_s``)."""
        if self.access_expires_at is None:
            return False
        return (time.time() if now is None else now) + leeway_s >= self.access_expires_at

    def with_user(self, user: User, **changes: float | str | None) -> Login:
        """The same login for an updated user (after a refresh), keeping its id and expiry."""
        return replace(self, user=user, **changes)  # type: ignore[arg-type]


class LoginRecords(Protocol):
    """Where logins are kept: this process's memory, or a store shared by a deployment."""

    def issue(self, user: User, *, refresh_token: str | None = None,
              access_expires_at: float | None = None) -> Login: ...
    def get(self, login_id: str) -> Login | None: ...
    def replace(self, login: Login) -> None: ...
    def revoke(self, login_id: str) -> None: ...


class LoginStore:
    """Logins in this process's memory; expired ones are dropped as they are met."""

    def __init__(self, expiry_s: float = DEFAULT_COOKIE_EXPIRY_S) -> None:
        if not expiry_s > 0:
            raise ValueError(f"a login's expiry must be > 0 seconds; got {expiry_s!r}")
        self.expiry_s = expiry_s
        self._logins: dict[str, Login] = {}

    def issue(self, user: User, *, refresh_token: str | None = None,
              access_expires_at: float | None = None) -> Login:
        self._sweep()
        login = Login(secrets.token_urlsafe(32), user, time.time() + self.expiry_s,
                      refresh_token=refresh_token, access_expires_at=access_expires_at)
        self._logins[login.id] = login
        return login

    def get(self, login_id: str) -> Login | None:
        login = self._logins.get(login_id)
        if login is not None and login.expired():
            del self._logins[login_id]
            return None
        return login

    def replace(self, login: Login) -> None:
        """Store an updated record (a refreshed token); a revoked login stays revoked."""
        if login.id in self._logins:
            self._logins[login.id] = login

    def revoke(self, login_id: str) -> None:
        self._logins.pop(login_id, None)

    def __len__(self) -> int:
        return len(self._logins)

    def _sweep(self) -> None:
        now = time.time()
        for login_id in [k for k, v in self._logins.items() if v.expired(now)]:
            del self._logins[login_id]


def set_login_cookie(handler: RequestHandler, login: Login) -> None:
    """Send the cookie naming ``login`` (the application's ``cookie_secret`` signs it)."""
    handler.set_signed_cookie(
        COOKIE_NAME, login.id, expires=login.expires_at, path=_cookie_path(handler), httponly=True,
        samesite="Lax", secure=handler.request.protocol == "https")


def login_id_of(handler: RequestHandler, expiry_s: float) -> str | None:
    """The login id of the request's cookie, or None (no cookie, a bad signature, older than ``expiry_s``)."""
    value = handler.get_signed_cookie(COOKIE_NAME, max_age_days=expiry_s / 86400.0, min_version=2)
    if value is None:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def clear_login_cookie(handler: RequestHandler) -> None:
    handler.clear_cookie(COOKIE_NAME, path=_cookie_path(handler))


def _cookie_path(handler: RequestHandler) -> str:
    prefix: str = handler.settings.get("kernelstate_prefix", "")
    return prefix + "/" if prefix else "/"
