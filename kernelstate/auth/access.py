"""The ``Auth`` a server holds: who is signed in, and whether they may see a path.

Handlers ask :meth:`Auth.user_of` (the login cookie, checked against the
server's login records, refreshed through the provider when its access token
has expired) and :meth:`Auth.authorized` (the ``--authorize`` function or
``ks.config.authorize_callback``, called as ``fn(user_info, path) -> bool``).
:meth:`Auth.fresh_login` does the refresh, once per login, also for open
sessions (:mod:`.session_login`).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tornado.web import RequestHandler

from .._config import config
from ..errors import ConfigError
from ..loops import SingleFlight
from .identity import User
from .live import Closable, LiveLogins
from .logins import Login, LoginRecords, clear_login_cookie, cookie_secret, login_id_of
from .provider import LoginProvider, Route

log = logging.getLogger(__name__)
AuthorizeCallback = Callable[[Mapping[str, Any], str], Any]


class Auth:
    """Authentication and authorization for one server."""

    def __init__(self, provider: LoginProvider, logins: LoginRecords, *, prefix: str, cookie_expiry_s: float,
                 authorize: AuthorizeCallback | None = None) -> None:
        self.provider = provider
        self.logins = logins
        self.prefix = prefix
        self.cookie_expiry_s = cookie_expiry_s
        self.authorize_callback = authorize
        self._refreshing: SingleFlight[str, Login | None] = SingleFlight()

    def routes(self) -> list[Route]:
        """The provider's login/logout/callback routes."""
        return self.provider.handlers(self.prefix)

    def settings(self, key: bytes, *, tls: bool = False) -> dict[str, Any]:
        """Tornado application settings: the cookie secret (derived from the server's key) and XSRF cookie flags."""
        return {"cookie_secret": cookie_secret(key), "kernelstate_prefix": self.prefix,
                "xsrf_cookie_kwargs": {"httponly": True, "samesite": "Strict", "path": self.prefix + "/",
                                       "secure": tls}}

    def login_url(self, next_url: str) -> str:
        return self.provider.login_url(self.prefix, safe_next(next_url, self.prefix))

    async def login_of(self, handler: RequestHandler) -> Login | None:
        """The request's live login (refreshed if its access token expired), or None."""
        login_id = login_id_of(handler, self.cookie_expiry_s)
        if login_id is None:
            return None
        login = self.logins.get(login_id)
        if login is None or login.expired():
            return None
        fresh = await self._fresh(login, None)
        if fresh is None:   # its refresh was refused: the login ended
            clear_login_cookie(handler)
        return fresh

    async def fresh_login(self, login_id: str, *, expiring_by: float | None = None) -> Login | None:
        """The live login ``login_id``, its access token refreshed through the provider if it expires by
        ``expiring_by`` (UNIX time; default: within the login's leeway, :meth:`Login.access_expired`).

        None when the login ended: revoked, expired, or its refresh refused (then it is revoked here,
        which closes its WebSockets). One refresh per login at a time, however many pages, WebSockets
        and sessions ask at once: a provider that rotates refresh tokens would refuse a second.
        """
        login = self.logins.get(login_id)
        if login is None or login.expired():
            return None
        return await self._fresh(login, expiring_by)

    async def _fresh(self, login: Login, expiring_by: float | None) -> Login | None:
        if not _access_due(login, expiring_by):
            return login
        return await self._refreshing.run(login.id, lambda: self._refresh(login.id, expiring_by))

    async def _refresh(self, login_id: str, expiring_by: float | None) -> Login | None:
        login = self.logins.get(login_id)   # as it is now: a refresh that just ended may have renewed it
        if login is None or login.expired():
            return None
        if not _access_due(login, expiring_by):
            return login
        refreshed = await self.provider.refresh(login)
        if refreshed is None:
            log.info("login of %s ended: its access token expired and could not be refreshed", login.user.name)
            self.logins.revoke(login_id)
            return None
        if refreshed is not login:
            self.logins.replace(refreshed)
        return refreshed

    def track(self, login: Login, connection: Closable) -> None:
        """Close ``connection`` (a WebSocket) when ``login`` is revoked, if the records support it."""
        if isinstance(self.logins, LiveLogins):
            self.logins.track(login.id, connection)

    async def user_of(self, handler: RequestHandler) -> User | None:
        """Who the request is signed in as, or None."""
        login = await self.login_of(handler)
        return login.user if login is not None else None

    async def authorized(self, user: User, path: str) -> bool:
        """Whether ``user`` may see ``path``: the authorize callback's answer (True without one)."""
        return await authorize_allows(self.authorize_callback, user.claims(), path)


def _access_due(login: Login, expiring_by: float | None) -> bool:
    """Whether ``login``'s access token needs refreshing: it expires by ``expiring_by`` (default: soon)."""
    if expiring_by is None:
        return login.access_expired()
    return login.access_expires_at is not None and login.access_expires_at <= expiring_by


async def authorize_allows(callback: AuthorizeCallback | None, user_info: Mapping[str, Any], path: str) -> bool:
    """Whether ``callback`` (default: ``ks.config.authorize_callback``) allows ``user_info`` to see ``path``.

    True without any callback. Only a ``True`` answer allows; a callback that
    raises refuses (and is logged): a broken rule must not let everyone in.
    Both hosts call this (the Jupyter extension with Jupyter's identity).
    """
    callback = callback or config.process_value("authorize_callback")
    if callback is None:
        return True
    try:
        result = callback(dict(user_info), path)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        log.exception("the authorize callback raised for user %r and path %s: refused", user_info.get("name"), path)
        return False
    return result is True


def page_path(request_path: str, prefix: str = "") -> str:
    """The page a request path belongs to: ``/app`` for ``/app`` and for its WebSocket ``/app/ws``.

    The authorize callback gets this, so one rule covers a page and its WebSocket.
    """
    if not request_path.endswith("/ws"):
        return request_path
    page = request_path[: -len("/ws")]
    return page + "/" if page == prefix.rstrip("/") else page


def safe_next(next_url: str | None, prefix: str) -> str:
    """``next_url`` if it is a path on this site, else the server's root: never another host."""
    root = prefix + "/"
    if not next_url:
        return root
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith(("//", "/\\")) \
            or "\\" in next_url or any(ord(c) < 32 for c in next_url):
        return root
    return next_url


def load_authorize(spec: str) -> AuthorizeCallback:
    """The function named by ``--authorize MODULE:FUNCTION`` (MODULE a module name or a .py file)."""
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function:
        raise ConfigError(f"--authorize expects MODULE:FUNCTION (or path/to/file.py:FUNCTION); got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            loader_spec = importlib.util.spec_from_file_location(f"kernelstate_authorize_{path.stem}", path)
            if loader_spec is None or loader_spec.loader is None or not path.is_file():
                raise ConfigError(f"--authorize {spec!r}: no Python file at {str(path)!r}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"--authorize {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ConfigError(f"--authorize {spec!r}: {module_name!r} has no function {function!r}")
    return fn  # type: ignore[no-any-return]
