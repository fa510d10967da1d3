"""The page service: one page request becomes the HTML of a new session.

Both hosts answer an app's page through :meth:`PageService.page_for`:

- without reuse, a session is created for the request and its page rendered;
- with reuse (``--reuse-sessions``), a page cached under the request's key is
  answered at once with a fresh signed token for a *pending* session, whose app
  code runs when its WebSocket connects (:mod:`kernelstate.reuse` holds the
  cache and its safety rules); in ``verify`` mode every cache hit also renders
  a fresh session and records any difference from the cached page. A request
  too large to keep pending (:mod:`kernelstate.web.pending`) gets a session
  rendered for it instead, which the session limits count.

A page never carries a session's request values: only its signed token,
bound to the signed-in user (``RequestInfo.user``) when the host asks for
it (``bind_user``), and then the reuse key includes the user too, so one
user's page is never another's.
With stateless pages (``--stateless-pages``, ``--num-procs``), any process
serves any request of a tab: see :mod:`kernelstate.web.anyproc` (the token
then also carries the page's path and query arguments: signed, not secret).
Failures become pages too (:func:`busy_page`, :func:`app_failed_page`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from tornado.httputil import HTTPServerRequest

from ..loading import AppSpec
from ..reuse import CachedPage, ReuseCache
from ..session import RequestInfo
from .anyproc import StatelessPages
from .manager import SessionEntry, SessionLimitError, SessionManager
from .page import TOKEN_PLACEHOLDER, PageOptions, render_message, render_page
from .tokens import Signer

log = logging.getLogger(__name__)

KeyFunc = Callable[[Any], Hashable]
ReuseMode = bool | str  # False, True or "verify"


class PageService:
    """Pages for one host's apps: sessions from its manager, tokens from its signer, its reuse cache."""

    def __init__(self, manager: SessionManager, signer: Signer, reuse: ReuseCache, *,
                 token_expiration_s: float, reuse_mode: Callable[[], ReuseMode],
                 default_key_func: Callable[[], KeyFunc | None], bind_user: bool = False,
                 stateless: Callable[[], bool] = lambda: False) -> None:
        self.manager = manager
        self.signer = signer
        self.reuse = reuse
        self.token_expiration_s = token_expiration_s
        self._reuse_mode = reuse_mode
        self._default_key_func = default_key_func
        self.key_funcs: dict[str, KeyFunc] = {}   # learned from apps that set their own
        # Behind the host's own login: tokens carry the signed-in user (the host's sockets check it) and
        # reuse keys include it. (Not in Jupyter, whose token-authenticated requests get a made-up name each.)
        self.bind_user = bind_user
        self.stateless = stateless                # --stateless-pages: see kernelstate.web.anyproc
        self.anyproc = StatelessPages(self)

    def key_func_for(self, app: AppSpec) -> KeyFunc | None:
        return self.key_funcs.get(app.route) or self._default_key_func()

    async def page_for(self, app: AppSpec, info: RequestInfo, request: HTTPServerRequest,
                       options: PageOptions) -> str:
        """The HTML for one page request; raises SessionLimitError or AppLoadError."""
        if self.stateless():
            return await self.anyproc.page_for(app, info, request, options)
        expiration = self.token_expiration_s
        bound = info.user if self.bind_user else None
        reuse = self._reuse_mode()
        key = None
        if reuse:
            key = self.reuse.key(app.route, self.key_func_for(app), request, user=bound)
            cached = self.reuse.get(key) if key is not None else None
            if cached is not None and reuse == "verify":
                return await self._verified(app, info, cached, key, options)
            if cached is not None:
                session_id = self.signer.new_session_id()
                if self.manager.add_pending(session_id, app, info, expiration):
                    return cached.html.replace(TOKEN_PLACEHOLDER, self.signer.token(session_id, expiration, bound))
        session_id = self.signer.new_session_id()
        entry = await self.manager.create(app, info, session_id, token_ttl_s=expiration)
        html = render_page(entry.host.page, TOKEN_PLACEHOLDER, options)
        if reuse and key is not None:
            self.remember(app, request, key, entry, html, bound)
        return html.replace(TOKEN_PLACEHOLDER, self.signer.token(session_id, expiration, bound))

    def remember(self, app: AppSpec, request: HTTPServerRequest, key: Hashable, entry: SessionEntry,
                 html: str, user: str | None = None) -> CachedPage | None:
        """Cache the page ``entry`` rendered (``html``, token placeholder in) unless the reuse rules refuse."""
        learned = entry.host.session_key_func
        key_func = learned or self.key_func_for(app)
        if learned is not None:
            self.key_funcs[app.route] = learned
            key = self.reuse.key(app.route, learned, request, user=user)
        if key is None:
            return None
        page = CachedPage(html, entry.host.page)
        if self.reuse.consider(key, app.route, key_func, request, set(entry.host.request_reads), page):
            return page
        return None

    async def _verified(self, app: AppSpec, info: RequestInfo, cached: CachedPage, key: Hashable,
                        options: PageOptions) -> str:
        """Verify mode: render a fresh session and serve the cached page only if it is the same.

        A difference is reported (``reuse.differences`` and the log), the key is
        dropped from the cache and the fresh page is served, so verify mode never
        shows a page that a fresh render would not.
        """
        session_id = self.signer.new_session_id()
        entry = await self.manager.create(app, info, session_id, token_ttl_s=self.token_expiration_s)
        token = self.signer.token(session_id, self.token_expiration_s,
                                 info.user if self.bind_user else None)
        if self.reuse.compare(app.route, cached.spec, entry.host.page):
            self.reuse.discard(key)
            return render_page(entry.host.page, token, options)
        return cached.html.replace(TOKEN_PLACEHOLDER, token)


def busy_page(exc: SessionLimitError, root_url: str) -> str:
    """The 503 page when the host is at its session cap."""
    return render_message("503 Too many sessions", "The server is busy",
                          [f"{exc}. Try again in a few seconds."], root_url)


def app_failed_page(route: str, summary: str, root_url: str, detail: str | None,
                    hint: str = "The server logged the details; other apps keep working.") -> str:
    """The 500 page of an app whose code failed; ``detail`` (a traceback) only for whom may see it."""
    return render_message("500 App failed to load", f"The app {route} could not be loaded",
                          [summary, hint], root_url, detail)
