"""The standalone server's Tornado handlers; every dependency comes from ``initialize``.

- ``DocHandler``: GET an app's page (through the shared page service);
- ``DocWebSocketHandler``: the shared session WebSocket, with the server's origin check;
- ``IndexHandler``, ``LivenessHandler``, ``NotFoundHandler``.

Handlers see the server only through :class:`Site`, the few things they need.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any, Protocol

from tornado import web
from tornado.httputil import HTTPServerRequest

from ..errors import AppLoadError
from ..loading import AppSpec
from ..session import RequestInfo
from ..web.manager import SessionManager, SessionLimitError
from ..web.origins import origin_allowed
from ..web.page import render_message
from ..web.pages import app_failed_page, busy_page
from ..web.socket import SessionSocket
from ..web.tokens import Signer

log = logging.getLogger(__name__)


class Site(Protocol):
    """What the standalone handlers need of their server."""

    @property
    def dev(self) -> bool: ...
    @property
    def prefix(self) -> str: ...
    @property
    def manager(self) -> SessionManager: ...
    @property
    def signer(self) -> Signer: ...
    @property
    def origin_allowlist(self) -> list[str]: ...
    @property
    def app_routes(self) -> list[str]: ...

    def root_url_for(self, path: str) -> str: ...
    async def page_for(self, app: AppSpec, request: HTTPServerRequest) -> str:
        """The page of a new session of ``app``; raises SessionLimitError or AppLoadError."""
    def index_links(self, root: str) -> list[dict[str, Any]]: ...
    def render_index(self, links: list[dict[str, Any]], root: str) -> str: ...


def request_info(request: HTTPServerRequest) -> RequestInfo:
    """What the app may read about a Tornado request (kept server-side, never in the page)."""
    args = {k: list(v) for k, v in request.query_arguments.items() if k != "bokeh-session-id"}
    headers = {k: v for k, v in request.headers.get_all()}
    cookies = {name: morsel.value for name, morsel in request.cookies.items()}
    return RequestInfo(args=args, headers=headers, cookies=cookies, path=request.path,
                       url=request.full_url(), remote_ip=request.remote_ip)


class _Base(web.RequestHandler):
    site: Site

    def initialize(self, site: Site, **kwargs: Any) -> None:
        self.site = site

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        detail = None
        if self.site.dev and "exc_info" in kwargs:
            detail = "".join(traceback.format_exception(*kwargs["exc_info"]))
        self.finish(render_message(f"{status_code} {reason}", f"{status_code}: {reason}", [],
                                   self.site.root_url_for(self.request.path), detail))


class DocHandler(_Base):
    """An app's page. Each GET is a new session (or a cached page for a new one)."""

    def initialize(self, site: Site, app: AppSpec, **kwargs: Any) -> None:
        self.site = site
        self.app = app

    async def get(self, *args: Any) -> None:
        path = self.request.path
        if path.endswith("/") and path != self.site.prefix + "/":
            self.redirect(path.rstrip("/") + ("?" + self.request.query if self.request.query else ""), permanent=False)
            return
        self.set_header("Cache-Control", "no-store")
        root = self.site.root_url_for(path)
        try:
            html = await self.site.page_for(self.app, self.request)
        except SessionLimitError as exc:
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(busy_page(exc, root))
            return
        except AppLoadError as exc:
            cause = exc.cause or exc
            log.error("app %s failed to load: %s: %s", self.app.route, type(cause).__name__, cause,
                      exc_info=(type(cause), cause, cause.__traceback__))
            self.set_status(500, "App failed to load")
            detail = "".join(traceback.format_exception(cause)) if self.site.dev else None
            self.finish(app_failed_page(self.app.route, f"{type(cause).__name__}: {cause}", root, detail))
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)


class DocWebSocketHandler(SessionSocket):
    """One browser tab's Bokeh protocol connection to its session."""

    def initialize(self, site: Site, app: AppSpec, **kwargs: Any) -> None:
        self.site = site
        self.app = app

    # -- before the upgrade: origin and token, refused with 403 ----------------------
    def check_origin(self, origin: str) -> bool:
        allowed = origin_allowed(origin, self.site.origin_allowlist)
        if not allowed:
            log.warning("refused WebSocket from origin %r for %s", origin[:100], self.request.path)
        return allowed

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.verify_token(self.site.signer)
        await super().get(*args, **kwargs)

    # -- after the upgrade ----------------------------------------------------------
    async def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self.cap_write_buffer()
        await self.attach_session(self.site.manager, self.app.route)


class IndexHandler(_Base):
    """``/``: a list of the served apps, with their titles."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        root = self.site.root_url_for(self.request.path)
        self.finish(self.site.render_index(self.site.index_links(root), root))


class LivenessHandler(_Base):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        manager = self.site.manager
        self.finish({"alive": True, "sessions": len(manager), "pending": manager.pending_count,
                     "apps": self.site.app_routes})


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        raise web.HTTPError(404, "no app at %s", self.request.path[:200], reason="Not Found")
