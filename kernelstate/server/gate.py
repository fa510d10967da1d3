"""The login gate of a standalone server: no route answers before login, except the open ones.

:func:`gate_routes` wraps every handler of the application's route table in
:class:`AuthGate`, whose ``prepare`` runs before the handler's own:

- not signed in: a GET of a page is redirected to the login page (with
  ``next``); a WebSocket gets HTTP 401 before the upgrade (logged with the
  session id of its token); any other request 401;
- signed in: ``current_user`` is set (a WebSocket is closed with
  ``CloseCode.SIGNED_OUT`` when its login ends; the session it attaches to
  lives under its login, kept fresh by :mod:`kernelstate.auth.session_login`);
  where the route asks (pages, WebSockets, the index, static dirs; not
  BokehJS's library files) the
  authorize callback runs with the page's path (``/app`` for ``/app`` and
  for its WebSocket ``/app/ws``), and a refusal is a 403 page
  naming the user and how to sign out (a bare 403 for a WebSocket);
- the login store unreachable (``--session-store`` down past the login cache's
  bound): a 503 page (a bare 503 for a WebSocket), never let in unverified.

Open routes (``/liveness``, the login and logout pages, ``/ks-static/``) are
listed by the caller and left as they are.
"""
from __future__ import annotations

import logging
from typing import Any

from tornado import web
from tornado.websocket import WebSocketHandler

from ..auth.access import Auth, page_path
from ..auth.identity import User
from ..auth.pages import UNAVAILABLE_REASON, forbidden_page, unavailable_page
from ..auth.session_login import bind_connection
from ..store.base import StoreUnavailableError
from ..web.manager import SessionEntry
from ..web.tokens import Signer

log = logging.getLogger(__name__)


class AuthGate(web.RequestHandler):
    """Mixin put first in a gated handler's bases; its class attributes come from :func:`gated`."""

    gate_auth: Auth
    gate_signer: Signer
    gate_authorize: bool = True
    gate_login_id: str | None = None

    async def prepare(self) -> None:
        try:
            login = await self.gate_auth.login_of(self)
        except StoreUnavailableError:   # logged once per outage by the login records
            self._unavailable()
            return
        if login is None:
            self._unauthenticated()
            return
        user = self.current_user = login.user
        if isinstance(self, WebSocketHandler):
            self.gate_auth.track(login, self)   # closed when this login is revoked (logout)
            self.gate_login_id = login.id
        path = page_path(self.request.path, self.gate_auth.prefix)
        if self.gate_authorize and not await self.gate_auth.authorized(user, path):
            self._forbidden(user)
            return
        result: Any = super().prepare()
        if result is not None:
            await result

    def attached(self, entry: SessionEntry) -> None:
        """A WebSocket attached to its session: the session lives under this login (kept fresh, see
        :mod:`kernelstate.auth.session_login`)."""
        if self.gate_login_id is not None and isinstance(self, WebSocketHandler):
            bind_connection(self.gate_auth, self.gate_login_id, entry.host, self)
        attached = getattr(super(), "attached", None)
        if attached is not None:
            attached(entry)

    def _unauthenticated(self) -> None:
        if isinstance(self, WebSocketHandler):
            log.warning("refused WebSocket for %s (session=%s): not signed in", self.request.path[:200],
                        self._session_for_log())
            raise web.HTTPError(401, reason="Not signed in")
        if self.request.method not in ("GET", "HEAD"):
            raise web.HTTPError(401, reason="Not signed in")
        self.set_header("Cache-Control", "no-store")
        self.redirect(self.gate_auth.login_url(self.request.uri or "/"))

    def _unavailable(self) -> None:
        if isinstance(self, WebSocketHandler):
            raise web.HTTPError(503, reason=UNAVAILABLE_REASON)
        self.set_status(503, UNAVAILABLE_REASON)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Retry-After", "30")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(unavailable_page(root_url=self._root_url()))

    def _root_url(self) -> str:
        depth = self.request.path.count("/") - 1 - self.gate_auth.prefix.count("/")
        return "../" * depth if depth > 0 else "./"

    def _forbidden(self, user: User) -> None:
        path = self.request.path
        if isinstance(self, WebSocketHandler):
            log.warning("refused WebSocket for %s (session=%s): the authorize callback refused user %r",
                        path[:200], self._session_for_log(), user.name)
            raise web.HTTPError(403, reason="Forbidden")
        log.warning("the authorize callback refused user %r the path %s", user.name, path[:200])
        self.set_status(403)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(forbidden_page(user=user.name, path=path, logout_url=self.gate_auth.prefix + "/logout",
                                   root_url=self._root_url()))

    def _session_for_log(self) -> str | None:
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        return self.gate_signer.session_id_of(protocols[1]) if len(protocols) == 2 else None


def gated(handler: type[web.RequestHandler], auth: Auth, signer: Signer,
          authorize: bool = True) -> type[web.RequestHandler]:
    """``handler`` behind the login gate (a subclass with :class:`AuthGate` first)."""
    attrs = {"gate_auth": auth, "gate_signer": signer, "gate_authorize": authorize, "__module__": __name__,
             "__doc__": f"{handler.__name__} behind the login gate."}
    return type(f"Gated{handler.__name__}", (AuthGate, handler), attrs)


def gate_routes(routes: list[Any], auth: Auth, signer: Signer, *, open_patterns: set[str],
                library_patterns: set[str]) -> list[Any]:
    """The route table with every handler gated, except ``open_patterns``.

    ``library_patterns`` (BokehJS's files) need a login but no authorize call.
    Entries that are not ``(pattern, handler, kwargs)`` tuples (the Host check) are kept as they are.
    """
    out: list[Any] = []
    for route in routes:
        if not isinstance(route, tuple) or route[0] in open_patterns:
            out.append(route)
            continue
        pattern, handler, *rest = route
        out.append((pattern, gated(handler, auth, signer, authorize=pattern not in library_patterns), *rest))
    return out
