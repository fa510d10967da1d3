"""The extension's Tornado handlers, all under ``{base_url}kernelstate/``.

Every handler authenticates with Jupyter's own identity provider and asks its
authorizer (``@web.authenticated`` + ``@authorized``; WebSockets use
``@ws_authenticated`` on ``get`` so a refusal is a 403 before the upgrade,
and keep Jupyter's inherited ``check_origin``). Non-GET API calls get
Jupyter's XSRF check. Collaborators (session manager, relays, pool) come from
the extension app in the server settings, never from module globals.

Routes:

- ``/`` and ``apps/``: index of servable notebooks and scripts;
- ``apps/<path>``: an app page (a new session in a kernel of its own);
- ``apps/<path>/ws``: the Bokeh protocol for that session, relayed;
- ``kernels/<kernel>/docs/<doc>/<view>/ws``: a cell output's Document, relayed;
- ``static/...`` (BokehJS), ``ks-static/...`` (kernelstate CSS/JS);
- ``api/ping``, ``api/sessions`` (GET), ``api/sessions/<id>`` (DELETE).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketHandler

from .._version import __version__
from ..auth.access import authorize_allows
from ..auth.pages import forbidden_page
from ..endpoint import CloseCode
from ..errors import AppLoadError
from ..web.crosssite import is_cross_site
from ..web.manager import SessionEntry, SessionLimitError
from ..web.page import render_message
from ..web.pages import app_failed_page, busy_page
from ..web.socket import BokehSocket, SessionSocket
from ..web.static import ConfinedStaticHandler
from .apps import (
    AppPathError,
    KernelApp,
    app_request_info,
    is_app_file,
    jupyter_user_info,
    list_apps,
    notebook_kernel_name,
    resolve_app_path,
)
from .kernel_host import AppKernelError, KernelHost
from .relay import KernelGoneError, RelayedConnection

if TYPE_CHECKING:
    from .extension import KernelstateApp

log = logging.getLogger(__name__)


class _Extension(ExtensionHandlerMixin):
    @property
    def ks(self) -> KernelstateApp:
        return cast("KernelstateApp", self.extensionapp)

    @property
    def ks_root(self) -> str:
        return str(self.base_url).rstrip("/") + "/kernelstate/"


class IndexHandler(_Extension, JupyterHandler):
    """The apps this server can serve: notebooks and scripts under the root that use kernelstate."""

    auth_resource = "contents"

    @web.authenticated
    @authorized("read", "contents")
    async def get(self) -> None:
        root = self.ks.root_dir
        found = await asyncio.get_running_loop().run_in_executor(None, list_apps, root)
        links = [{"url": self.ks_root + "apps/" + quote(a.api_path),
                  "title": a.title, "description": a.api_path} for a in found]
        self.set_header("Cache-Control", "no-store")
        self.finish(render_message("kernelstate apps", "kernelstate apps on this Jupyter server",
                                   [f"{len(links)} notebook(s) and script(s) under the server root use kernelstate. "
                                    "Each opens as an app; every tab gets its own session in its own kernel."],
                                   self.ks_root, links=links))


class AppPageHandler(_Extension, JupyterHandler):
    """An app page: runs the notebook or script for a new session in a kernel of its own."""

    auth_resource = "kernels"

    async def _allowed_by_callback(self) -> bool:
        """``ks.config.authorize_callback`` with Jupyter's identity; a refusal answers the 403 page."""
        info = jupyter_user_info(self.current_user)
        if await authorize_allows(None, info, self.request.path):
            return True
        name = str(info.get("name") or info.get("username") or "this user")
        log.warning("ks.config.authorize_callback refused user %r the app %s", name, self.request.path[:200])
        self.set_status(403)
        self.set_header("Cache-Control", "no-store")
        self.finish(forbidden_page(user=name, path=self.request.path, logout_url=str(self.base_url) + "logout",
                                   root_url=self.ks_root))
        return False

    @web.authenticated
    @authorized("execute", "kernels")
    async def get(self, api_path: str) -> None:
        ks = self.ks
        path = await self._app_file(api_path)
        if not await self._allowed_by_callback():
            return
        if is_cross_site(self.request):
            # A link on another site must not run code as the signed-in user: ask first, same-origin.
            self._confirm(api_path)
            return
        user = getattr(self.current_user, "username", None)
        if not self.token_authenticated and ks.sessions_of(user) >= ks.max_sessions_per_user:
            log.warning("user %s is at the limit of %d app sessions", user, ks.max_sessions_per_user)
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(busy_page(SessionLimitError(f"you already have {ks.max_sessions_per_user} app sessions "
                                                    "(close some tabs)"), self.ks_root))
            return
        kernel_name = self.get_query_argument("kernel", None) or notebook_kernel_name(path) or ks.default_kernel_name()
        specs = await ensure_async(self.kernel_spec_manager.find_kernel_specs())
        if kernel_name not in specs:
            raise web.HTTPError(400, "unknown kernel %r", kernel_name[:80], reason="Unknown kernel name")
        app = KernelApp(path, api_path, kernel_name)
        self.set_header("Cache-Control", "no-store")
        ks.start_background()
        try:
            html = await ks.pages.page_for(app, app_request_info(self), self.request, ks.page_options())
        except SessionLimitError as exc:
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(busy_page(exc, self.ks_root))
            return
        except AppLoadError as exc:
            cause = exc.cause or exc
            # The signed-in Jupyter user may run code in kernels: the traceback is theirs to see.
            detail = cause.traceback if isinstance(cause, AppKernelError) else "".join(traceback.format_exception(cause))
            log.error("app %s failed to load: %s", app.route, cause)
            self.set_status(500, "App failed to load")
            self.finish(app_failed_page(api_path, str(cause), self.ks_root, detail,
                                        "Other apps and your notebooks keep working."))
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)


    @web.authenticated
    @authorized("execute", "kernels")
    async def post(self, api_path: str) -> None:
        """The confirmation of a cross-site link (Jupyter has checked ``_xsrf``): run it, same-origin."""
        await self._app_file(api_path)
        self.redirect(self.request.uri or self.request.path, status=303)

    async def _app_file(self, api_path: str) -> Path:
        """The app's file; 403/404 for paths outside the root and files that are not kernelstate apps."""
        ks = self.ks
        try:
            path = resolve_app_path(ks.root_dir, api_path, ks.allow_hidden)
        except AppPathError as exc:
            raise web.HTTPError(exc.status, "app path %r refused: %s", api_path[:200], exc, reason=str(exc)) from None
        if not await asyncio.get_running_loop().run_in_executor(None, is_app_file, str(path)):
            raise web.HTTPError(404, "%s is not a kernelstate app (no .servable())", api_path[:200],
                                reason="Not a kernelstate app")
        return path

    def _confirm(self, api_path: str) -> None:
        user = getattr(self.current_user, "name", None) or getattr(self.current_user, "username", "you")
        log.warning("cross-site request for app %s (Sec-Fetch-Site=%s, Referer=%s): asking %s to confirm",
                    api_path[:200], self.request.headers.get("Sec-Fetch-Site"),
                    (self.request.headers.get("Referer") or "")[:200], user)
        self.set_header("Cache-Control", "no-store")
        self.finish(render_message(
            "Run this app?", f"Run {api_path} as {user}?",
            [f"A link from another site asks to run the app {api_path} in a new kernel, as {user}, "
             "with the arguments in its URL. Run it only if you trust the link."],
            self.ks_root,
            form={"action": self.request.uri, "fields": {"_xsrf": self.xsrf_token.decode("ascii")},
                  "button": "Run the app", "cancel": self.ks_root},
        ))


class _RelayWebSocket(_Extension):
    """Mixed into the app and cell WebSockets (first, before Jupyter's ``WebSocketMixin``, the
    Bokeh socket and ``JupyterHandler``): origin and kernel authorization before the upgrade."""

    auth_resource = "kernels"

    def set_default_headers(self) -> None:
        """No page headers (CSP etc.) on a WebSocket upgrade."""

    async def _authorize(self: Any) -> None:
        """Check origin and authorize ``execute`` on kernels; 403 otherwise.

        Tornado checks the origin too, but only once the upgrade starts; checking
        first means a foreign page learns nothing (not even whether a kernel exists).
        """
        origin = self.get_origin()
        if origin is not None and not self.check_origin(origin):
            raise web.HTTPError(403, "cross-origin WebSocket from %s", origin[:100], reason="Cross-origin request")
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "execute", "kernels"))
        if not allowed:
            raise web.HTTPError(403, "user may not execute on kernels", reason="Forbidden")

    def start_relay_socket(self: Any) -> None:
        WebSocketMixin.open(self)  # keep-alive pings
        self.set_nodelay(True)
        self.cap_write_buffer()


class CellWebSocketHandler(_RelayWebSocket, WebSocketMixin, BokehSocket, JupyterHandler):
    """A cell output's Document in a user's kernel, relayed over a ``connect`` comm."""

    relayed: RelayedConnection | None = None

    @ws_authenticated
    async def get(self, kernel_id: str, doc_id: str, view: str) -> None:
        await self._authorize()
        self.document_token = self.bokeh_token()
        if kernel_id not in self.kernel_manager:
            raise web.HTTPError(404, "no kernel %s", kernel_id[:64], reason="Unknown kernel")
        await WebSocketHandler.get(self, kernel_id, doc_id, view)

    async def open(self, kernel_id: str, doc_id: str, view: str) -> None:
        self.start_relay_socket()
        try:
            relay = await self.ks.relays.get(kernel_id)
        except KernelGoneError as exc:
            log.warning("cell output connection refused: %s", exc)
            self.close(CloseCode.KERNEL_DIED, "the kernel is not running: start it and re-run the cell")
            return
        if self._closed:
            return
        self.relayed = RelayedConnection(relay, self, {"doc_id": doc_id, "token": self.document_token})

    async def on_message(self, message: str | bytes) -> None:
        if self.relayed is not None:
            self.relayed.from_browser(message)

    def on_close(self) -> None:
        self._closed = True
        if self.relayed is not None:
            self.relayed.close()
            self.relayed = None


class AppWebSocketHandler(_RelayWebSocket, WebSocketMixin, SessionSocket, JupyterHandler):
    """The Bokeh protocol for one served app session (its Document is in its kernel)."""

    @ws_authenticated
    async def get(self, api_path: str) -> None:
        await self._authorize()
        if not await authorize_allows(None, jupyter_user_info(self.current_user), self.request.path):
            log.warning("ks.config.authorize_callback refused an app WebSocket for %s", self.request.path[:200])
            raise web.HTTPError(403, "ks.config.authorize_callback refused this WebSocket", reason="Forbidden")
        self.verify_token(self.ks.signer)
        assert self.session_id is not None
        entry = self.ks.manager.get(self.session_id)
        if entry is not None and not self.may_attach(entry):
            raise web.HTTPError(403, "session belongs to another user", reason="Forbidden")
        await WebSocketHandler.get(self, api_path)

    def may_attach(self, entry: SessionEntry) -> bool:
        # The server token is the server owner's credential; token-authenticated
        # requests carry no stable user name (Jupyter makes one up per request).
        if self.token_authenticated:
            return True
        return entry.host.owner == getattr(self.current_user, "username", object())

    async def open(self, api_path: str) -> None:
        self.start_relay_socket()
        await self.attach_session(self.ks.manager, "/apps/" + api_path)


class StaticHandler(_Extension, JupyterHandler, ConfinedStaticHandler):  # type: ignore[misc]  # both initialize(**kw)
    """Package assets (BokehJS, kernelstate's CSS/JS) for signed-in users; no symlinks out."""

    auth_resource = "contents"

    @web.authenticated
    def head(self, path: str) -> Any:  # type: ignore[override]
        return web.StaticFileHandler.head(self, path)

    @web.authenticated
    def get(self, path: str, include_body: bool = True) -> Any:  # type: ignore[override]
        return web.StaticFileHandler.get(self, path, include_body)


class PingHandler(_Extension, APIHandler):
    """``api/ping``: is the extension loaded (the cell runtime and deployment checks use it)."""

    auth_resource = "kernels"

    @web.authenticated
    @authorized("read", "kernels")
    async def get(self) -> None:
        relays = self.ks.relays.relays()
        self.finish(json.dumps({"kernelstate": __version__, "sessions": len(self.ks.manager), "relays": len(relays),
                                "comms": sum(r.comm_count for r in relays), "pool_ready": self.ks.pool.ready_count}))


class _SessionsAPI(_Extension, APIHandler):
    """A user sees and ends only the sessions they opened (the server token sees all)."""

    auth_resource = "kernels"

    def visible(self, entry: SessionEntry) -> bool:
        if self.token_authenticated:
            return True
        return entry.host.owner == getattr(self.current_user, "username", object())


class SessionsHandler(_SessionsAPI):
    """``api/sessions``: the caller's served app sessions."""

    @web.authenticated
    @authorized("read", "kernels")
    async def get(self) -> None:
        now = time.monotonic()
        self.finish(json.dumps([{
            "id": e.id, "path": e.app.route.removeprefix("/apps/"),
            "kernel_id": e.host.kernel_id if isinstance(e.host, KernelHost) else None,
            "connections": e.connections, "age_s": round(now - e.created, 1),
        } for e in self.ks.manager.entries() if self.visible(e)]))


class SessionHandler(_SessionsAPI):
    """``api/sessions/<id>`` DELETE: end one of the caller's sessions now (its kernel is shut down)."""

    @web.authenticated
    @authorized("write", "kernels")
    async def delete(self, session_id: str) -> None:
        entry = self.ks.manager.get(session_id)
        if entry is None or not self.visible(entry):  # another user's session is not even said to exist
            raise web.HTTPError(404, "no session %s", session_id[:80], reason="Unknown session")
        self.ks.manager.destroy(session_id, CloseCode.SESSION_EXPIRED, "the session was ended on the server")
        self.set_status(204)
        self.finish()
