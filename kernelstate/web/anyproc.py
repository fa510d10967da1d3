"""Stateless pages: any process serves any request of a tab (``--stateless-pages``, ``--num-procs``).

Behind a balancer, or with several workers on one port, a tab's page request
and its WebSocket may reach different processes. A stateless page does not
pin the session to the process that served the page:

- the page comes from the page cache of :mod:`kernelstate.reuse` (keyed by
  ``session_key_func``, the app path by default) with a fresh token whose
  signed claims carry the app route, the request path and query arguments
  (not secret; cookies, headers and the user are never in a token);
- whichever process the WebSocket reaches creates the session from those
  claims, with the cookies, headers and address of the WebSocket request
  itself (:func:`request_from_claims`); :mod:`kernelstate.web.firstuse` makes
  that happen once per token on a machine, so a reconnect is told to reload;
- so one page view runs the app once, when its session is created. A cache
  miss renders the app once more only to fill the cache: at most one such
  render per key per process at a time (concurrent misses wait for it), and
  that session is destroyed at once;
- a page that cannot be cached (the app reads a request value the key
  ignores: the reuse warning says which) is rendered as its own session,
  pinned to this process; its token still has claims, so a WebSocket that
  reaches another process gets the session created there, running the app a
  second time for that page view (logged once per app).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tornado.httputil import HTTPServerRequest

from ..loading import AppSpec
from ..reuse import CachedPage
from ..session import RequestInfo
from .firstuse import FirstUse
from .limits import client_key
from .manager import SessionEntry, SessionManager
from .page import TOKEN_PLACEHOLDER, PageOptions, render_page

if TYPE_CHECKING:
    from .pages import PageService

log = logging.getLogger(__name__)
CLAIM = "ks_request"
MAX_TOKEN_LENGTH = 4096  # what the WebSocket accepts (socket.MAX_TOKEN_LENGTH)


def request_claims(route: str, info: RequestInfo) -> dict[str, Any]:
    """What a WebSocket's process needs to create a page's session: nothing secret."""
    args = {k: [v.decode("utf-8", "surrogateescape") for v in vs] for k, vs in info.args.items()}
    return {CLAIM: {"route": route, "path": info.path, "args": args}}


def request_from_claims(claims: dict[str, Any], route: str, socket_request: RequestInfo) -> RequestInfo | None:
    """The request a session is created for: the page's path and arguments, the WebSocket's cookies,
    headers, user and address. None when the claims are missing or name another app."""
    data = claims.get(CLAIM)
    if not isinstance(data, dict) or data.get("route") != route:
        return None
    path, args = data.get("path"), data.get("args")
    if not isinstance(path, str) or not isinstance(args, dict):
        return None
    decoded = {str(k): [str(v).encode("utf-8", "surrogateescape") for v in vs]
               for k, vs in args.items() if isinstance(vs, list)}
    parts = urlsplit(socket_request.url)
    query = urlencode([(k, v.decode("utf-8", "replace")) for k, vs in decoded.items() for v in vs])
    url = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    return RequestInfo(args=decoded, headers=dict(socket_request.headers), cookies=dict(socket_request.cookies),
                       path=path, url=url, user=socket_request.user, remote_ip=socket_request.remote_ip)


class StatelessPages:
    """The stateless page flow of one :class:`~kernelstate.web.pages.PageService`."""

    def __init__(self, service: PageService) -> None:
        self.service = service
        self._fills: dict[Hashable, asyncio.Future[CachedPage | None]] = {}
        self._warned: set[str] = set()
        self.fill_renders = 0
        self.pinned_renders = 0

    def _bound(self, info: RequestInfo) -> str | None:
        """The signed-in user a token is bound to (behind the host's own login), as on a stateful page."""
        return info.user if self.service.bind_user else None

    def token(self, app: AppSpec, info: RequestInfo, session_id: str | None = None) -> str | None:
        """A token with request claims, or None when they would make it too long for a WebSocket."""
        signer = self.service.signer
        token = signer.token(session_id or signer.new_session_id(), self.service.token_expiration_s,
                             user=self._bound(info), claims=request_claims(app.route, info))
        return token if len(token) <= MAX_TOKEN_LENGTH else None

    async def page_for(self, app: AppSpec, info: RequestInfo, request: HTTPServerRequest,
                       options: PageOptions) -> str:
        service = self.service
        service.manager.slots.check(client_key(info.remote_ip))   # a full server says so now, not at connect
        key = service.reuse.key(app.route, service.key_func_for(app), request, user=self._bound(info))
        entry: SessionEntry | None = None
        if key is not None:
            cached, entry = await self._cached(key, app, info, request, options)
            if cached is not None:
                token = self.token(app, info)
                if token is not None:
                    return cached.html.replace(TOKEN_PLACEHOLDER, token)
        return await self._pinned(app, info, options, entry)

    async def _cached(self, key: Hashable, app: AppSpec, info: RequestInfo, request: HTTPServerRequest,
                      options: PageOptions) -> tuple[CachedPage | None, SessionEntry | None]:
        """The cached page for ``key``, filling the cache if needed (one render per key at a time).

        When the render cannot be cached, its session is returned: this request's, pinned here.
        """
        service = self.service
        cached = service.reuse.get(key)
        if cached is not None:
            return cached, None
        running = self._fills.get(key)
        if running is not None:
            return await asyncio.shield(running), None
        fill: asyncio.Future[CachedPage | None] = asyncio.get_running_loop().create_future()
        self._fills[key] = fill
        try:
            entry = await service.manager.create(app, info, service.signer.new_session_id(),
                                                 token_ttl_s=service.token_expiration_s)
            html = render_page(entry.host.page, TOKEN_PLACEHOLDER, options)
            cached = service.remember(app, request, key, entry, html, self._bound(info))
        except BaseException as exc:
            fill.set_exception(exc)
            fill.exception()  # retrieved: waiters (if any) get it too
            raise
        finally:
            del self._fills[key]
        fill.set_result(cached)
        if cached is None:
            return None, entry
        self.fill_renders += 1
        service.manager.destroy(entry.id, reason="rendered only to fill the page cache")
        return cached, None

    async def _pinned(self, app: AppSpec, info: RequestInfo, options: PageOptions,
                      entry: SessionEntry | None) -> str:
        """The page of a session rendered for this request, which lives in this process."""
        service = self.service
        if entry is None:
            entry = await service.manager.create(app, info, service.signer.new_session_id(),
                                                 token_ttl_s=service.token_expiration_s)
        self.pinned_renders += 1
        if app.route not in self._warned:
            self._warned.add(app.route)
            log.warning("stateless pages: the page of %s is not cached (see the reuse warning above, or the request is "
                        "too large for a token), so its session is made here; a WebSocket that another process gets "
                        "runs the app there again. Give the app a session_key_func covering what it reads "
                        "(logged once per app)", app.route)
        token = (self.token(app, info, entry.id)
                 or service.signer.token(entry.id, service.token_expiration_s, self._bound(info)))
        return render_page(entry.host.page, token, options)


def remaining_s(claims: dict[str, Any]) -> float:
    """Seconds until a token with these claims expires."""
    expiry = claims.get("session_expiry")
    return float(expiry) - time.time() if isinstance(expiry, (int, float)) else 0.0


async def create_from_claims(manager: SessionManager, first_use: FirstUse, app: AppSpec, session_id: str,
                             info: RequestInfo, ttl_s: float) -> SessionEntry | None:
    """Create a stateless page's session for its first WebSocket on this machine; None for a later one
    (a reconnect whose session is gone: the tab is told to reload)."""
    if ttl_s <= 0 or not first_use.claim(session_id):
        return None
    try:
        return await manager.create(app, info, session_id, token_ttl_s=ttl_s)
    except BaseException:
        first_use.release(session_id)
        raise
