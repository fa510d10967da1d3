"""``{prefix}/logout``, the same for every provider: revoke the login on the server, clear the cookie.

GET shows a confirmation form; its POST (with Tornado's ``_xsrf``) revokes the
login record, so every copy of the cookie stops working, then sends the
browser to the provider's own logout URL if it has one, else to the login page.
"""
from __future__ import annotations

import logging

from tornado import web

from ..store.base import StoreUnavailableError
from .logins import Login, LoginRecords, clear_login_cookie, login_id_of
from .pages import UNAVAILABLE_REASON, logout_page
from .provider import LoginProvider

log = logging.getLogger(__name__)


class LogoutHandler(web.RequestHandler):
    def initialize(self, provider: LoginProvider, logins: LoginRecords, prefix: str, expiry_s: float) -> None:
        self.provider = provider
        self.logins = logins
        self.prefix = prefix
        self.expiry_s = expiry_s

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get(self) -> None:
        login_id = login_id_of(self, self.expiry_s)
        login = self._login(login_id)
        self.finish(logout_page(user=login.user.name if login else None, action=self.prefix + "/logout",
                                xsrf=self.xsrf_token.decode("ascii"), cancel=self.prefix + "/"))

    def post(self) -> None:
        self.check_xsrf_cookie()
        login_id = login_id_of(self, self.expiry_s)
        login = self._login(login_id)
        if login_id:
            try:
                self.logins.revoke(login_id)
            except StoreUnavailableError:   # the login would go on elsewhere: say so, do not pretend
                raise web.HTTPError(503, reason=UNAVAILABLE_REASON) from None
        clear_login_cookie(self)
        if login is not None:
            log.info("user %r signed out", login.user.name)
        after = self.provider.logout_redirect(login) if login is not None else None
        self.redirect(after or self.provider.login_url(self.prefix, self.prefix + "/"))

    def _login(self, login_id: str | None) -> Login | None:
        try:
            return self.logins.get(login_id) if login_id else None
        except StoreUnavailableError:
            raise web.HTTPError(503, reason=UNAVAILABLE_REASON) from None
