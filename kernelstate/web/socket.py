"""The session WebSocket: the Bokeh protocol for one tab, the same flow in both hosts.

Before the upgrade (refusals are HTTP 403, so a foreign page learns nothing):
the ``Sec-WebSocket-Protocol`` header must be ``bokeh, <token>``; the token's
signature, and the session id's inside it, must verify.

After the upgrade (:meth:`SessionSocket.attach_session`), in this order:

- a live session with that id: attach;
- else, an expired token: close with ``TOKEN_EXPIRED`` (reload the page),
  unless the host can rebuild the session (below);
- else, a pending session (a reuse page, or a page whose first WebSocket is
  late): create it now and attach; at the session cap, close with
  ``SERVER_STOPPING``; if its app fails, ``SESSION_EXPIRED``;
- else, a session the host can rebuild (a session store holds its record,
  :mod:`kernelstate.store`): rebuild it and attach;
- else, a stateless page's first WebSocket on this machine (claims in its
  token, :meth:`SessionSocket.create_from_claims`): create it now and attach;
- a session the host says this connection may not use: ``FORBIDDEN``.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from tornado import web
from tornado.websocket import WebSocketHandler

from ..endpoint import CloseCode
from ..errors import AppLoadError
from .frames import FrameWriter
from .manager import SessionEntry, SessionLimitError, SessionManager
from .tokens import Signer, TokenError

log = logging.getLogger(__name__)
MAX_TOKEN_LENGTH = 4096


class BokehSocket(FrameWriter, WebSocketHandler):
    """A WebSocket speaking the Bokeh protocol with a token in its subprotocol."""

    def bokeh_token(self) -> str:
        """The token of ``Sec-WebSocket-Protocol: bokeh, <token>``; 403 without one."""
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if len(protocols) != 2 or protocols[0] != "bokeh" or not protocols[1] or len(protocols[1]) > MAX_TOKEN_LENGTH:
            raise web.HTTPError(403, "WebSocket without a bokeh token subprotocol", reason="Missing token")
        return protocols[1]

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "bokeh" if subprotocols and subprotocols[0] == "bokeh" else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return None


class SessionSocket(BokehSocket):
    """One tab's connection to its session in a :class:`SessionManager`."""

    entry: SessionEntry | None = None
    token_expired = False
    claims: dict[str, Any] = {}
    _sessions: SessionManager | None = None

    def verify_token(self, signer: Signer, user: str | None = None) -> None:
        """Set ``session_id`` and ``token_expired`` from the subprotocol token; 403 if it is forged
        or (behind a login) was issued to another ``user`` than the connection's."""
        token = self.bokeh_token()
        try:
            self.session_id, self.token_expired, self.claims = signer.verify_claims(token, user=user)
        except TokenError as exc:
            log.warning("refused WebSocket for %s: %s", self.request.path[:200], exc.reason)
            raise web.HTTPError(403, "invalid token: %s", exc.reason, reason="Invalid token") from None

    async def create_from_claims(self, manager: SessionManager) -> SessionEntry | None:
        """A stateless page's session, created from the token's claims (see web/anyproc.py);
        None where the host does not do that, or when the token was used before."""
        return None

    def may_attach(self, entry: SessionEntry) -> bool:
        """Whether this connection may use ``entry`` (a host restricts this, e.g. to the session's owner)."""
        return True

    async def attach_session(self, manager: SessionManager, route: str) -> None:
        """Attach this connection to its session, or close it with the code that says why not."""
        sid = self.session_id
        assert sid is not None, "verify_token() runs before the upgrade"
        entry = manager.get(sid)
        if entry is None:
            if self.token_expired:
                # A session store's record outlives the page's token (a tab open for hours reconnects).
                entry = await self._recover(sid, route)
                if entry is None:
                    self.close(CloseCode.TOKEN_EXPIRED, "token expired: reload the page")
                    return
            try:
                entry = entry or await manager.claim_pending(sid)
                if entry is None:
                    entry = await self._recover(sid, route)
                if entry is None and self.claims:
                    entry = await self.create_from_claims(manager)
            except SessionLimitError as exc:
                self.close(CloseCode.SERVER_STOPPING, str(exc)[:100])
                return
            except AppLoadError as exc:
                cause = exc.cause or exc
                log.error("app %s failed for a reused page (session=%s): %s", route, sid, cause,
                          exc_info=(type(cause), cause, cause.__traceback__))
                self.close(CloseCode.SESSION_EXPIRED, f"the app failed: {type(cause).__name__}"[:100])
                return
        if entry is None or entry.host.destroyed:
            self.close(CloseCode.SESSION_EXPIRED, "session expired: reload the page")
            return
        if not self.may_attach(entry):
            self.close(CloseCode.FORBIDDEN, "this session belongs to another user")
            return
        if self._closed:
            return
        try:
            entry.host.populate()
        except AppLoadError as exc:
            cause = exc.cause or exc
            log.error("app %s failed while building its page (session=%s): %s", route, sid, cause,
                      exc_info=(type(cause), cause, cause.__traceback__))
            manager.destroy(sid, CloseCode.APP_FAILED, "the app failed while building its page")
            self.close(CloseCode.APP_FAILED, "The app failed while building its page. Reload to try again.")
            return
        self.entry = entry
        self._sessions = manager
        manager.connected(entry)
        entry.host.attach(self)
        self.attached(entry)

    def attached(self, entry: SessionEntry) -> None:
        """Called once this connection is attached to ``entry`` (the login gate binds the session to its login)."""

    async def recover_session(self, session_id: str) -> SessionEntry | None:
        """Rebuild a session this process does not have (a host with a session store overrides this)."""
        return None

    async def _recover(self, sid: str, route: str) -> SessionEntry | None:
        try:
            return await self.recover_session(sid)
        except SessionLimitError as exc:
            log.warning("cannot restore session for %s: %s (session=%s)", route, exc, sid)
        except AppLoadError as exc:
            cause = exc.cause or exc
            log.error("app %s failed while restoring a session (session=%s): %s", route, sid, cause,
                      exc_info=(type(cause), cause, cause.__traceback__))
        return None

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Handle one frame where it is read (no task per frame); Tornado reads the next one when this returns,
        or, after a message that held the loop, once the returned pause is over."""
        if self.entry is not None:
            pause = self.entry.host.receive(self, message)
            if pause:
                return asyncio.sleep(pause)
        return None

    def on_close(self) -> None:
        self._closed = True
        if self.entry is not None and self._sessions is not None:
            self.entry.host.detach(self)
            self._sessions.disconnected(self.entry)
            self.entry = None
