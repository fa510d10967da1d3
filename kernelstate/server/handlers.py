"""The standalone server's Tornado handlers; every dependency comes from ``initialize``.

- ``DocHandler``: GET an app's page (through the shared page service);
- ``DocWebSocketHandler``: the shared session WebSocket, with the server's origin check;
- ``IndexHandler``, ``LivenessHandler``, ``ReadinessHandler``, ``NotFoundHandler``.

Handlers see the server only through :class:`Site`, the few things they need.
"""
from __future__ import annotations

import logging
import os
import secrets
import traceback
from typing import Any, Protocol

from tornado import web
from tornado.httputil import HTTPServerRequest

from ..auth.identity import User
from ..auth.logins import COOKIE_NAME
from ..errors import AppLoadError
from ..loading import AppSpec
from ..session import RequestInfo
from ..web.anyproc import create_from_claims, remaining_s, request_from_claims
from ..web.firstuse import FirstUse
from ..web.manager import SessionEntry, SessionLimitError, SessionManager
from ..web.origins import origin_allowed
from ..web.page import render_message
from ..web.pages import app_failed_page, busy_page
from ..web.socket import SessionSocket
from ..web.tokens import Signer

log = logging.getLogger(__name__)
CREDENTIAL_COOKIES = frozenset({COOKIE_NAME, "_xsrf"})


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
    def app_routes(self) -> list[str]: ...
    @property
    def first_use(self) -> FirstUse | None:
        """Stateless pages: where first uses of tokens are claimed (None: this server does not create
        sessions from token claims)."""
    @property
    def draining(self) -> bool:
        """Stopping soon: /readiness answers 503."""

    def origins_for(self, request: HTTPServerRequest) -> list[str]:
        """The WebSocket origins allowed for this request (exact matches, see web/origins.py)."""
    def root_url_for(self, path: str) -> str: ...
    async def page_for(self, app: AppSpec, request: HTTPServerRequest, user: User | None = None) -> str:
        """The page of a new session of ``app`` for ``user``; raises SessionLimitError or AppLoadError."""
    async def recover(self, app: AppSpec, session_id: str, request: RequestInfo) -> SessionEntry | None:
        """Rebuild a session this process does not have from the session store (None: nothing to rebuild)."""
    def index_links(self, root: str) -> list[dict[str, Any]]: ...
    def render_index(self, links: list[dict[str, Any]], root: str) -> str: ...


def request_info(request: HTTPServerRequest, user: User | None = None) -> RequestInfo:
    """What the app may read about a Tornado request (kept server-side, never in the page).

    The login and XSRF cookies are left out (of ``cookies`` and the ``Cookie``
    header): the app gets the user, never the credential.
    """
    args = {k: list(v) for k, v in request.query_arguments.items() if k != "bokeh-session-id"}
    cookies = {name: morsel.value for name, morsel in request.cookies.items() if name not in CREDENTIAL_COOKIES}
    headers = {k: v for k, v in request.headers.get_all() if k.lower() != "cookie"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return RequestInfo(args=args, headers=headers, cookies=cookies, path=request.path,
                       url=request.full_url(), remote_ip=request.remote_ip,
                       user=user.name if user else None, user_info=user.claims() if user else {},
                       access_token=user.access_token if user else None)


class ResponseHeaders(web.OutputTransform):
    """Adds fixed headers (framing, referrer policy) to every response of the application, assets too."""

    def __init__(self, request: HTTPServerRequest, headers: dict[str, str]) -> None:
        super().__init__(request)
        self.headers = headers

    def transform_first_chunk(self, status_code: int, headers: Any, chunk: bytes,
                              finishing: bool) -> tuple[int, Any, bytes]:
        for name, value in self.headers.items():
            headers.setdefault(name, value)
        return status_code, headers, chunk


class _Base(web.RequestHandler):
    site: Site

    def initialize(self, site: Site, app: AppSpec | None = None) -> None:
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

    def initialize(self, site: Site, app: AppSpec | None = None) -> None:
        assert app is not None, "an app route names its app"
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
            html = await self.site.page_for(self.app, self.request, self.current_user)
        except SessionLimitError as exc:
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(busy_page(exc, root))
            return
        except AppLoadError as exc:
            cause = exc.cause or exc
            error_id = secrets.token_hex(4)
            log.error("app %s failed to load (error %s): %s: %s", self.app.route, error_id, type(cause).__name__,
                      cause, exc_info=(type(cause), cause, cause.__traceback__))
            self.set_status(500, "App failed to load")
            if self.site.dev:
                summary = f"{type(cause).__name__}: {cause}"
                detail: str | None = "".join(traceback.format_exception(cause))
            else:  # the message can carry paths, keys or connection strings: only the log gets it
                summary = f"Error {error_id}: the server's log has the details (run with --dev to show them here)."
                detail = None
            self.finish(app_failed_page(self.app.route, summary, root, detail))
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)


class DocWebSocketHandler(SessionSocket):
    """One browser tab's Bokeh protocol connection to its session."""

    def initialize(self, site: Site, app: AppSpec) -> None:
        self.site = site
        self.app = app

    # -- before the upgrade: origin and token, refused with 403 ----------------------
    def check_origin(self, origin: str) -> bool:
        allowed = origin_allowed(origin, self.site.origins_for(self.request))
        if not allowed:
            log.warning("refused WebSocket from origin %r for %s", origin[:100], self.request.path)
        return allowed

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Tornado calls check_origin only for requests that look cross-origin: not when
        # Sec-Fetch-Site says same-origin or none, nor when Origin equals Host. A DNS-rebinding
        # page is both, so the exact check runs here, for every browser request.
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            raise web.HTTPError(403, "WebSocket origin %s not allowed", origin[:100], reason="Origin not allowed")
        user = self.current_user   # set by the login gate (server/gate.py) when the server has one
        self.verify_token(self.site.signer, user.name if isinstance(user, User) else None)
        await super().get(*args, **kwargs)

    # -- after the upgrade ----------------------------------------------------------
    async def recover_session(self, session_id: str) -> SessionEntry | None:
        return await self.site.recover(self.app, session_id, request_info(self.request))
    async def create_from_claims(self, manager: SessionManager) -> SessionEntry | None:
        first_use = self.site.first_use
        info = request_from_claims(self.claims, self.app.route, request_info(self.request))
        if first_use is None or info is None or self.session_id is None:
            return None
        return await create_from_claims(manager, first_use, self.app, self.session_id, info, remaining_s(self.claims))

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


class ReadinessHandler(_Base):
    """For load balancers: 200 while this process takes new tabs, 503 once it drains (SIGTERM)."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        if self.site.draining:
            self.set_status(503, "Draining")
        self.finish({"ready": not self.site.draining, "pid": os.getpid()})


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        raise web.HTTPError(404, "no app at %s", self.request.path[:200], reason="Not Found")
