"""Password login (``--basic-auth FILE`` or ``KERNELSTATE_BASIC_AUTH_PASSWORD``): the ``basic`` provider.

``{prefix}/login`` shows a form (user name, password, Tornado's ``_xsrf``);
its POST checks the password off the event loop, slowed after repeated
failures per client address and per user name (:mod:`.throttle`), then
issues a server-side login, sets its cookie and redirects to ``next`` (a path
on this site only). ``{prefix}/logout`` is :class:`.logout.LogoutHandler`.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from tornado import web
from tornado.ioloop import IOLoop

from ..store.base import StoreUnavailableError
from .access import safe_next
from .identity import User
from .logins import Login, LoginRecords, set_login_cookie
from .logout import LogoutHandler
from .pages import UNAVAILABLE_REASON, login_page
from .passwords import MAX_NAME_LENGTH, Passwords
from .provider import Route
from .throttle import FailureThrottle

log = logging.getLogger(__name__)


class PasswordProvider:
    """Logins checked against a :class:`Passwords` book."""

    name = "basic"

    def __init__(self, passwords: Passwords, logins: LoginRecords, *, expiry_s: float,
                 throttle: FailureThrottle | None = None) -> None:
        self.passwords = passwords
        self.logins = logins
        self.expiry_s = expiry_s
        self.throttle = throttle or FailureThrottle()

    def handlers(self, prefix: str) -> list[Route]:
        return [(f"{prefix}/login", PasswordLoginHandler, {"provider": self, "prefix": prefix}),
                (f"{prefix}/logout", LogoutHandler, {"provider": self, "logins": self.logins, "prefix": prefix,
                                                     "expiry_s": self.expiry_s})]

    def login_url(self, prefix: str, next_url: str) -> str:
        return f"{prefix}/login?" + urlencode({"next": next_url})

    async def refresh(self, login: Login) -> Login | None:
        return login   # a password login has no access token to refresh

    def logout_redirect(self, login: Login) -> str | None:
        return None


class PasswordLoginHandler(web.RequestHandler):
    def initialize(self, provider: PasswordProvider, prefix: str) -> None:
        self.provider = provider
        self.prefix = prefix

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get(self) -> None:
        self._form(safe_next(self.get_query_argument("next", ""), self.prefix))

    async def post(self) -> None:
        self.check_xsrf_cookie()
        name = self.get_body_argument("username", "").strip()[:MAX_NAME_LENGTH]
        password = self.get_body_argument("password", "")
        next_url = safe_next(self.get_body_argument("next", ""), self.prefix)
        client = self.request.remote_ip or "unknown"
        keys = (f"client:{client}", f"user:{name}")
        throttle = self.provider.throttle
        delay = throttle.delay_for(*keys)
        throttle.failed(*keys)   # counted before the wait, so parallel guesses are slowed too
        if delay:
            log.warning("login attempt for %r from %s delayed %.1f s after repeated failures", name, client, delay)
            await throttle.wait_for(delay)
        ok = await IOLoop.current().run_in_executor(None, self.provider.passwords.check, name, password)
        if not ok:
            log.warning("failed login for user %r from %s", name, client)
            self.set_status(401, "Wrong user name or password")
            self._form(next_url, username=name, error="Wrong user name or password.")
            return
        throttle.succeeded(*keys)
        try:
            login = self.provider.logins.issue(User(name, {"name": name}))
        except StoreUnavailableError:   # logged once per outage by the login records
            raise web.HTTPError(503, reason=UNAVAILABLE_REASON) from None
        set_login_cookie(self, login)
        log.info("user %r signed in from %s", name, client)
        self.redirect(next_url)

    def _form(self, next_url: str, username: str = "", error: str | None = None) -> None:
        self.finish(login_page(action=self.prefix + "/login", xsrf=self.xsrf_token.decode("ascii"),
                               next_url=next_url, username=username, error=error))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(f"{status_code}: {self._reason}")
