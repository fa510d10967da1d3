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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketHandler

from .._version import __version__
from ..errors import AppLoadError
from ..server.handlers import ConfinedStaticHandler, FrameWriter
from ..server.manager import SessionEntry, SessionLimitError
from ..server.page import render_message
from ..server.tokens import TokenError
from ..sync import CloseCode
from .apps import AppPathError, KernelApp, app_request_info, list_apps, notebook_kernel_name, resolve_app_path
from .relay import AppKernelError, KernelGoneError, RelayedConnection

if TYPE_CHECKING:
    from .extension import KernelstateApp

log = logging.getLogger(__name__)
MAX_TOKEN_LENGTH = 4096


class _Extension(ExtensionHandlerMixin):
    @property
    def ks(self) -> KernelstateApp:
        return self.extensionapp  # type: ignore[return-value]

    @property
    def ks_root(self) -> str:
        return self.base_url.rstrip("/") + "/kernelstate/"  # type: ignore[attr-defined,no-any-return]


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

    @web.authenticated
    @authorized("execute", "kernels")
    async def get(self, api_path: str) -> None:
        ks = self.ks
        try:
            path = resolve_app_path(ks.root_dir, api_path, ks.allow_hidden)
        except AppPathError as exc:
            raise web.HTTPError(exc.status, "app path %r refused: %s", api_path[:200], exc, reason=str(exc)) from None
        kernel_name = self.get_query_argument("kernel", None) or notebook_kernel_name(path) or ks.default_kernel_name()
        specs = await ensure_async(self.kernel_spec_manager.find_kernel_specs())
        if kernel_name not in specs:
            raise web.HTTPError(400, "unknown kernel %r", kernel_name[:80], reason="Unknown kernel name")
        app = KernelApp(path, api_path, kernel_name)
        self.set_header("Cache-Control", "no-store")
        try:
            html = await ks.page_for(app, app_request_info(self), self.request)
        except SessionLimitError as exc:
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(render_message("503 Too many sessions", "The server is busy",
                                       [f"{exc}. Try again in a few seconds."], self.ks_root))
            return
        except AppLoadError as exc:
            cause = exc.cause or exc
            detail = cause.traceback if isinstance(cause, AppKernelError) else "".join(traceback.format_exception(cause))
            log.error("app %s failed to load: %s", app.route, cause)
            self.set_status(500, "App failed to load")
            self.finish(render_message("500 App failed to load", f"The app {api_path} could not be loaded",
                                       [str(cause), "Other apps and your notebooks keep working."], self.ks_root,
                                       detail=detail))
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)


class _RelayWebSocket(_Extension, FrameWriter, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """Shared by the app and cell WebSockets: auth before the upgrade, Connection protocol after."""

    auth_resource = "kernels"

    def set_default_headers(self) -> None:
        """No page headers (CSP etc.) on a WebSocket upgrade."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "bokeh" if subprotocols and subprotocols[0] == "bokeh" else None

    async def _authorize(self) -> str:
        """Check origin, authorize ``execute`` on kernels, return the Bokeh token; 403 otherwise.

        Tornado checks the origin too, but only once the upgrade starts; checking
        first means a foreign page learns nothing (not even whether a kernel exists).
        """
        origin = self.get_origin()
        if origin is not None and not self.check_origin(origin):
            raise web.HTTPError(403, "cross-origin WebSocket from %s", origin[:100], reason="Cross-origin request")
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "execute", "kernels"))
        if not allowed:
            raise web.HTTPError(403, "user may not execute on kernels", reason="Forbidden")
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if len(protocols) != 2 or protocols[0] != "bokeh" or not protocols[1] or len(protocols[1]) > MAX_TOKEN_LENGTH:
            raise web.HTTPError(403, "WebSocket without a bokeh token subprotocol", reason="Missing token")
        return protocols[1]

    async def open(self, *args: Any, **kwargs: Any) -> None:
        WebSocketMixin.open(self)  # type: ignore[no-untyped-call]  # keep-alive pings
        self.set_nodelay(True)
        self.cap_write_buffer()


class CellWebSocketHandler(_RelayWebSocket):
    """A cell output's Document in a user's kernel, relayed over a ``connect`` comm."""

    relayed: RelayedConnection | None = None

    @ws_authenticated
    async def get(self, kernel_id: str, doc_id: str, view: str) -> None:
        self.bokeh_token = await self._authorize()
        if kernel_id not in self.kernel_manager:
            raise web.HTTPError(404, "no kernel %s", kernel_id[:64], reason="Unknown kernel")
        await WebSocketHandler.get(self, kernel_id, doc_id, view)

    async def open(self, kernel_id: str, doc_id: str, view: str) -> None:  # type: ignore[override]
        await super().open()
        try:
            relay = await self.ks.relays.get(kernel_id)
        except KernelGoneError as exc:
            log.warning("cell output connection refused: %s", exc)
            self.close(CloseCode.KERNEL_DIED, "the kernel is not running: start it and re-run the cell")
            return
        if self._closed:
            return
        self.relayed = RelayedConnection(relay, self, {"doc_id": doc_id, "token": self.bokeh_token})

    async def on_message(self, message: str | bytes) -> None:
        if self.relayed is not None:
            self.relayed.from_browser(message)

    def on_close(self) -> None:
        self._closed = True
        if self.relayed is not None:
            self.relayed.close()
            self.relayed = None


class AppWebSocketHandler(_RelayWebSocket):
    """The Bokeh protocol for one served app session (its Document is in its kernel)."""

    entry: SessionEntry | None = None

    @ws_authenticated
    async def get(self, api_path: str) -> None:
        token = await self._authorize()
        try:
            self.session_id, self.token_expired = self.ks.signer.verify(token)
        except TokenError as exc:
            log.warning("refused app WebSocket for %s: %s", self.request.path[:200], exc.reason)
            raise web.HTTPError(403, "invalid token: %s", exc.reason, reason="Invalid token") from None
        entry = self.ks.manager.get(self.session_id)
        if entry is not None and not self._owns(entry):
            raise web.HTTPError(403, "session belongs to another user", reason="Forbidden")
        await WebSocketHandler.get(self, api_path)

    def _owns(self, entry: SessionEntry) -> bool:
        # The server token is the server owner's credential; token-authenticated
        # requests carry no stable user name (Jupyter makes one up per request).
        if self.token_authenticated:
            return True
        owner = getattr(entry.host, "request", None)
        return getattr(owner, "user", None) == getattr(self.current_user, "username", object())

    async def open(self, api_path: str) -> None:  # type: ignore[override]
        await super().open()
        manager = self.ks.manager
        entry = manager.get(self.session_id)
        if entry is None:
            if self.token_expired:
                self.close(CloseCode.TOKEN_EXPIRED, "token expired: reload the page")
                return
            try:
                entry = await manager.claim_pending(self.session_id)
            except SessionLimitError as exc:
                self.close(CloseCode.SERVER_STOPPING, str(exc)[:100])
                return
            except AppLoadError as exc:
                log.error("app failed for a reused page (session=%s): %s", self.session_id, exc)
                self.close(CloseCode.SESSION_EXPIRED, "the app failed: reload the page")
                return
        if entry is None or entry.host.destroyed:
            self.close(CloseCode.SESSION_EXPIRED, "session expired: reload the page")
            return
        if not self._owns(entry):
            self.close(CloseCode.FORBIDDEN, "this session belongs to another user")
            return
        if self._closed:
            return
        self.entry = entry
        manager.connected(entry)
        entry.host.attach(self)

    async def on_message(self, message: str | bytes) -> None:
        if self.entry is not None:
            await self.entry.host.receive(self, message)

    def on_close(self) -> None:
        self._closed = True
        if self.entry is not None:
            self.entry.host.detach(self)
            self.ks.manager.disconnected(self.entry)
            self.entry = None


class StaticHandler(_Extension, JupyterHandler, ConfinedStaticHandler):
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


class SessionsHandler(_Extension, APIHandler):
    """``api/sessions``: the served app sessions of this server."""

    auth_resource = "kernels"

    @web.authenticated
    @authorized("read", "kernels")
    async def get(self) -> None:
        now = time.monotonic()
        self.finish(json.dumps([{
            "id": e.id, "path": getattr(e.app, "api_path", e.app.route), "kernel_id": getattr(e.host, "kernel_id", None),
            "connections": e.connections, "age_s": round(now - e.created, 1),
        } for e in self.ks.manager.entries()]))


class SessionHandler(_Extension, APIHandler):
    """``api/sessions/<id>`` DELETE: end a session now (its kernel is shut down)."""

    auth_resource = "kernels"

    @web.authenticated
    @authorized("write", "kernels")
    async def delete(self, session_id: str) -> None:
        if not self.ks.manager.destroy(session_id, CloseCode.SESSION_EXPIRED, "the session was ended on the server"):
            raise web.HTTPError(404, "no session %s", session_id[:80], reason="Unknown session")
        self.set_status(204)
        self.finish()
