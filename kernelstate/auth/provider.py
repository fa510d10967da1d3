"""What a way of logging in provides: its routes, where to send a visitor, refresh and logout.

A provider (:mod:`kernelstate.auth.basic` for passwords; OAuth/OIDC, GitHub
and JupyterHub providers likewise) serves its own login/logout/callback
routes under the server's prefix and issues a :class:`Login` through the
:class:`~kernelstate.auth.logins.LoginRecords` it was given. The rest of the
server only asks the :class:`~kernelstate.auth.access.Auth` who is signed in.
"""
from __future__ import annotations

from typing import Any, Protocol

from tornado.web import RequestHandler

from .logins import Login

Route = tuple[str, type[RequestHandler], dict[str, Any]]


class LoginProvider(Protocol):
    """One way of logging in."""

    name: str

    def handlers(self, prefix: str) -> list[Route]:
        """Its login, logout and callback routes under ``prefix`` (regexes, as Tornado takes them)."""
        ...

    def login_url(self, prefix: str, next_url: str) -> str:
        """Where an unauthenticated visitor of ``next_url`` (a same-site path) is sent."""
        ...

    async def refresh(self, login: Login) -> Login | None:
        """``login`` with a fresh access token, or None when it cannot be refreshed (log in again).

        Called when ``login.access_expired()``; a provider without tokens returns the login unchanged.
        """
        ...

    def logout_redirect(self, login: Login) -> str | None:
        """The provider's own logout URL to send the browser to after logout, or None."""
        ...
