"""Thin Tornado handlers; every dependency comes from ``initialize``.

- ``DocHandler``: GET an app's page (creates a session, or serves the reuse cache).
- ``DocWebSocketHandler``: the Bokeh protocol for one session.
- ``IndexHandler``, ``LivenessHandler``, ``ConfinedStaticHandler``, ``NotFoundHandler``.
"""
from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tornado import web
from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import AppLoadError
from ..loading import AppSpec
from ..session import RequestInfo
from ..sync import CloseCode, Fragment
from .manager import SessionEntry, SessionLimitError
from .origins import origin_allowed
from .page import render_message
from .tokens import TokenError

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)
access_log = logging.getLogger("kernelstate.access")
MIN_WRITE_BUFFER_BYTES = 8 * 1024 * 1024


def write_buffer_limit(max_message_bytes: int) -> int:
    """Bytes queued for one tab before it counts as not reading (and is dropped)."""
    return max(4 * max_message_bytes, MIN_WRITE_BUFFER_BYTES)


def request_info(request: Any) -> RequestInfo:
    """What the app may read about a Tornado request (kept server-side, never in the page)."""
    args = {k: list(v) for k, v in request.query_arguments.items() if k != "bokeh-session-id"}
    headers = {k: v for k, v in request.headers.get_all()}
    cookies = {name: morsel.value for name, morsel in request.cookies.items()}
    return RequestInfo(args=args, headers=headers, cookies=cookies, path=request.path,
                       url=request.full_url(), remote_ip=request.remote_ip)


class _Base(web.RequestHandler):
    def initialize(self, server: Server, **kwargs: Any) -> None:
        self.server = server

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        detail = None
        if self.server.options.dev and "exc_info" in kwargs:
            detail = "".join(traceback.format_exception(*kwargs["exc_info"]))
        self.finish(render_message(f"{status_code} {reason}", f"{status_code}: {reason}", [], self.server.root_url_for(self.request.path), detail))


class DocHandler(_Base):
    """An app's page. Each GET is a new session (or a cached page for a new one)."""

    def initialize(self, server: Server, app: AppSpec, **kwargs: Any) -> None:
        self.server = server
        self.app = app

    async def get(self, *args: Any) -> None:
        if self.request.path.endswith("/") and self.request.path != self.server.options.prefix + "/":
            self.redirect(self.request.path.rstrip("/") + ("?" + self.request.query if self.request.query else ""), permanent=False)
            return
        self.set_header("Cache-Control", "no-store")
        try:
            html = await self.server.page_for(self.app, self.request)
        except SessionLimitError as exc:
            self.set_status(503, "Too many sessions")
            self.set_header("Retry-After", "10")
            self.finish(render_message("503 Too many sessions", "The server is busy",
                                       [f"{exc}. Try again in a few seconds."], self.server.root_url_for(self.request.path)))
            return
        except AppLoadError as exc:
            cause = exc.cause or exc
            log.error("app %s failed to load: %s: %s", self.app.route, type(cause).__name__, cause,
                      exc_info=(type(cause), cause, cause.__traceback__))
            self.set_status(500, "App failed to load")
            detail = "".join(traceback.format_exception(cause)) if self.server.options.dev else None
            self.finish(render_message(
                "500 App failed to load", f"The app {self.app.route} could not be loaded",
                [f"{type(cause).__name__}: {cause}", "The server logged the details; other apps keep working."],
                self.server.root_url_for(self.request.path), detail,
            ))
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)


class FrameWriter:
    """The Connection side of a Bokeh-protocol WebSocket handler: write frames, close once, drop non-readers.

    Mixed into a :class:`~tornado.websocket.WebSocketHandler` (before it) by the
    standalone server and by the Jupyter extension's relay sockets.
    """

    session_id: str | None = None
    _closed = False

    def cap_write_buffer(self: Any) -> None:
        """Without a cap, a tab that asks for replies and never reads them grows the write buffer without bound."""
        assert self.ws_connection is not None
        self.ws_connection.stream.max_write_buffer_size = write_buffer_limit(self.max_message_size)

    def send_frames(self: Any, frames: Sequence[Fragment]) -> None:
        if self._closed or self.ws_connection is None:
            return
        try:
            for frame in frames:
                self.write_message(frame, binary=isinstance(frame, bytes)).add_done_callback(_closed_is_fine)
        except WebSocketClosedError:
            self._closed = True
        except StreamBufferFullError:
            # A close frame would queue behind what the tab is not reading: drop the connection.
            log.warning("dropping a WebSocket whose client is not reading (%d bytes queued) (session=%s)",
                        self.ws_connection.stream.max_write_buffer_size or 0, self.session_id)
            self._closed = True
            self.ws_connection.stream.close()

    def close(self: Any, code: int | None = None, reason: str | None = None) -> None:
        self._closed = True
        super().close(code, reason)  # type: ignore[misc]


def _closed_is_fine(future: Any) -> None:
    # A write that fails because the tab went away (with writes still queued) needs no report;
    # unretrieved, it would be logged as "Task exception was never retrieved".
    if not future.cancelled():
        future.exception()


class DocWebSocketHandler(FrameWriter, WebSocketHandler):
    """One browser tab's Bokeh protocol connection to its session."""

    def initialize(self, server: Server, app: AppSpec, **kwargs: Any) -> None:
        self.server = server
        self.app = app
        self.entry: SessionEntry | None = None
        self.session_id: str | None = None
        self.token_expired = False

    # -- before the upgrade: origin and token, refused with 403 ----------------------
    def check_origin(self, origin: str) -> bool:
        allowed = origin_allowed(origin, self.server.origin_allowlist)
        if not allowed:
            log.warning("refused WebSocket from origin %r for %s", origin[:100], self.request.path)
        return allowed

    async def get(self, *args: Any, **kwargs: Any) -> None:
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if len(protocols) != 2 or protocols[0] != "bokeh":
            raise web.HTTPError(403, "WebSocket without a bokeh token subprotocol", reason="Missing token")
        try:
            self.session_id, self.token_expired = self.server.signer.verify(protocols[1])
        except TokenError as exc:
            log.warning("refused WebSocket for %s: %s", self.request.path, exc.reason)
            raise web.HTTPError(403, "invalid token: %s", exc.reason, reason="Invalid token") from None
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "bokeh" if subprotocols and subprotocols[0] == "bokeh" else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    # -- after the upgrade ----------------------------------------------------------
    async def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self.cap_write_buffer()
        sid = self.session_id
        assert sid is not None
        entry = self.server.manager.get(sid)
        if entry is None:
            if self.token_expired:
                self.close(CloseCode.TOKEN_EXPIRED, "token expired: reload the page")
                return
            try:
                entry = await self.server.manager.claim_pending(sid)
            except SessionLimitError as exc:
                self.close(CloseCode.SERVER_STOPPING, str(exc)[:100])
                return
            except AppLoadError as exc:
                cause = exc.cause or exc
                log.error("app %s failed for a reused page (session=%s): %s", self.app.route, sid, cause,
                          exc_info=(type(cause), cause, cause.__traceback__))
                self.close(CloseCode.SESSION_EXPIRED, f"the app failed: {type(cause).__name__}"[:100])
                return
        if entry is None or entry.host.destroyed:
            self.close(CloseCode.SESSION_EXPIRED, "session expired: reload the page")
            return
        if self._closed:
            return
        self.entry = entry
        self.server.manager.connected(entry)
        entry.host.attach(self)

    async def on_message(self, message: str | bytes) -> None:
        if self.entry is None:
            return
        await self.entry.host.receive(self, message)

    def on_close(self) -> None:
        self._closed = True
        if self.entry is not None:
            self.entry.host.detach(self)
            self.server.manager.disconnected(self.entry)
            self.entry = None


class IndexHandler(_Base):
    """``/``: a list of the served apps, with their titles."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        root = self.server.root_url_for(self.request.path)
        links = [{"url": root + app.route.lstrip("/"), "title": app.title, "description": app.route}
                 for app in self.server.apps]
        self.finish(self.server.render_index(links, root))


class LivenessHandler(_Base):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({"alive": True, "sessions": len(self.server.manager), "apps": [a.route for a in self.server.apps]})


class ConfinedStaticHandler(web.StaticFileHandler):
    """StaticFileHandler that also refuses symlinks pointing outside its root."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if "\x00" in absolute_path:  # no file has one; os.path would raise ValueError (a 500)
            raise web.HTTPError(404, "NUL in a static path", reason="Not Found")
        real_root = os.path.realpath(root)
        real = os.path.realpath(absolute_path)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise web.HTTPError(403, "%s is not in the static root", self.path, reason="Forbidden")
        return super().validate_absolute_path(root, absolute_path)


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        raise web.HTTPError(404, "no app at %s", self.request.path[:200], reason="Not Found")
