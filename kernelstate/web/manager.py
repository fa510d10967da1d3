"""SessionManager: every live session of a server, their lifetimes and expiry.

The manager works through the :class:`~kernelstate.host.DocumentHost` seam
only, so the same code manages in-process sessions (standalone server) and
kernel-hosted ones (Jupyter extension).

Lifecycle rules:
- a session is created per page request (or, for a cached reuse page, when
  its WebSocket first connects: a *pending* session waits until then, see
  :mod:`kernelstate.web.pending`);
- a session whose page has not connected within ``first_connect_timeout_s``
  is destroyed and releases its slot; its app and request are kept as a
  dormant pending session, so a WebSocket that comes later with a valid
  token (a slow page load) gets a session created then;
- a session with no connection for ``unused_session_lifetime_ms`` is
  destroyed at the next check (every ``check_unused_sessions_ms``);
- a pending session that never connects expires with its token.

Sessions, sessions being created and fresh pending sessions hold slots,
bounded by ``max_sessions`` and per client address (:mod:`kernelstate.web.limits`).

All methods run on the server's event loop.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..endpoint import CloseCode
from ..host import DocumentHost
from ..loading import AppSpec
from ..loops import SingleFlight
from ..session import RequestInfo
from .limits import SessionLimitError, SlotCounter, client_key, sessions_per_client
from .pending import PendingSession, PendingStore, request_bytes

__all__ = ["HostFactory", "SessionEntry", "SessionLimitError", "SessionManager"]

log = logging.getLogger(__name__)

HostFactory = Callable[[AppSpec, RequestInfo, str], Awaitable[DocumentHost]]
NOT_CONNECTED_REASON = "the page did not connect in time: reload it"


@dataclass
class SessionEntry:
    id: str
    app: AppSpec
    host: DocumentHost
    client: str = ""
    created: float = field(default_factory=time.monotonic)
    connections: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    ever_connected: bool = False
    # Until the first connection: what recreating the session takes, and the first-connect timer.
    request: RequestInfo | None = None
    token_expires: float = 0.0
    first_connect: asyncio.TimerHandle | None = None


class SessionManager:
    """Owns the sessions of one server (standalone or Jupyter)."""

    def __init__(self, create_host: HostFactory, unused_session_lifetime_ms: int = 15000,
                 max_sessions: int | None = None, max_pending: int = 10000, *,
                 max_sessions_per_client: int | None = None, first_connect_timeout_s: float = 5.0,
                 pending: PendingStore | None = None) -> None:
        self._create_host = create_host
        self.unused_lifetime_s = unused_session_lifetime_ms / 1000.0
        self.max_sessions = max_sessions
        self.first_connect_timeout_s = first_connect_timeout_s
        self.slots = SlotCounter(max_sessions, sessions_per_client(max_sessions_per_client, max_sessions))
        self._entries: dict[str, SessionEntry] = {}
        self._pending = pending or PendingStore(max_count=max_pending)
        self._creating: SingleFlight[str, SessionEntry] = SingleFlight()
        self.created_total = 0
        self.destroyed_total = 0

    # -- queries ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> SessionEntry | None:
        return self._entries.get(session_id)

    def entries(self) -> list[SessionEntry]:
        return list(self._entries.values())

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending.bytes

    def _end_windows(self) -> None:
        for pending in self._pending.end_windows(time.monotonic()):
            self.slots.release(pending.client)

    # -- creation -------------------------------------------------------------------
    async def create(self, app: AppSpec, request: RequestInfo, session_id: str,
                     token_ttl_s: float | None = None) -> SessionEntry:
        """Create (once, even if asked concurrently) the session ``session_id``.

        With ``token_ttl_s`` (how long its page's token stays valid), a session
        whose page does not connect within the first-connect window is recreated
        when its WebSocket comes later. Raises SessionLimitError at a limit.
        """
        existing = self._entries.get(session_id)
        if existing is not None:
            return existing
        return await self._creating.run(session_id, lambda: self._create(app, request, session_id, token_ttl_s))

    async def _create(self, app: AppSpec, request: RequestInfo, session_id: str,
                      token_ttl_s: float | None) -> SessionEntry:
        client = client_key(request.remote_ip)
        self._end_windows()
        self.slots.take(client)
        try:
            host = await self._create_host(app, request, session_id)
        except BaseException:
            self.slots.release(client)
            raise
        entry = SessionEntry(session_id, app, host, client)
        self._entries[session_id] = entry
        self.created_total += 1
        if token_ttl_s is not None and token_ttl_s > 0:
            entry.request, entry.token_expires = request, time.monotonic() + token_ttl_s
        if self.first_connect_timeout_s > 0:
            entry.first_connect = asyncio.get_running_loop().call_later(
                self.first_connect_timeout_s, self._first_connect_missed, session_id)
        return entry

    def add_pending(self, session_id: str, app: AppSpec, request: RequestInfo, ttl_s: float) -> bool:
        """Remember a session to create when its WebSocket connects (reuse pages).

        Returns False if the request is too large to keep pending (render the
        page as a full session instead); raises SessionLimitError at a limit.
        """
        now = time.monotonic()
        size = request_bytes(request)
        if size > self._pending.max_entry_bytes:
            return False
        client = client_key(request.remote_ip)
        self._end_windows()
        self.slots.check(client)
        window = self.first_connect_timeout_s if self.first_connect_timeout_s > 0 else ttl_s
        self._pending.add(session_id, PendingSession(app, request, client, now + ttl_s, size,
                                                     slot_until=now + min(window, ttl_s)))
        self.slots.take(client)
        return True

    async def claim_pending(self, session_id: str) -> SessionEntry | None:
        """Create the pending session ``session_id`` for its connecting WebSocket (None if there is none)."""
        inflight = self._creating.running(session_id)
        if inflight is not None:
            return await asyncio.shield(inflight)
        pending = self._pending.pop(session_id)
        if pending is None:
            return None
        if pending.slot_until:
            self.slots.release(pending.client)  # create() takes it again
        remaining = pending.expires - time.monotonic()
        if remaining <= 0:
            return None
        return await self.create(pending.app, pending.request, session_id, token_ttl_s=remaining)

    # -- connections -------------------------------------------------------------
    def connected(self, entry: SessionEntry) -> None:
        entry.connections += 1
        entry.ever_connected = True
        entry.request = None
        if entry.first_connect is not None:
            entry.first_connect.cancel()
            entry.first_connect = None

    def disconnected(self, entry: SessionEntry) -> None:
        entry.connections = max(0, entry.connections - 1)
        if entry.connections == 0:
            entry.idle_since = time.monotonic()

    # -- teardown -----------------------------------------------------------------
    def destroy(self, session_id: str, code: int = CloseCode.SESSION_EXPIRED, reason: str = "") -> bool:
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return False
        self.destroyed_total += 1
        self.slots.release(entry.client)
        if entry.first_connect is not None:
            entry.first_connect.cancel()
            entry.first_connect = None
        try:
            entry.host.destroy(code, reason)
        except Exception:
            log.exception("destroying session failed (session=%s)", session_id)
        return True

    def _first_connect_missed(self, session_id: str) -> None:
        entry = self._entries.get(session_id)
        if entry is not None and not entry.ever_connected:
            entry.first_connect = None
            log.debug("session not connected within %.1fs: destroyed, kept pending (session=%s)",
                      self.first_connect_timeout_s, session_id)
            self._retire(entry)

    def _retire(self, entry: SessionEntry) -> None:
        """Destroy a never-connected session, keeping what a late WebSocket needs to recreate it."""
        request, now = entry.request, time.monotonic()
        self.destroy(entry.id, CloseCode.SESSION_EXPIRED, NOT_CONNECTED_REASON)
        if request is not None and entry.token_expires > now:
            self._pending.add(entry.id, PendingSession(entry.app, request, entry.client, entry.token_expires,
                                                       request_bytes(request)))

    def cleanup(self) -> int:
        """Destroy sessions idle past their lifetime; drop expired pending sessions."""
        now = time.monotonic()
        expired = [
            e for e in self._entries.values()
            if e.connections == 0 and now - e.idle_since >= self.unused_lifetime_s
        ]
        for entry in expired:
            log.debug("session expired after %.1fs unused (session=%s)", now - entry.idle_since, entry.id)
            if entry.ever_connected:
                self.destroy(entry.id, CloseCode.SESSION_EXPIRED, "session expired: reload the page")
            else:
                self._retire(entry)
        self._end_windows()
        self._pending.drop_expired(now)
        return len(expired)

    def destroy_all(self, code: int = CloseCode.SERVER_STOPPING, reason: str = "server stopped: reload the page") -> None:
        for sid in list(self._entries):
            self.destroy(sid, code, reason)
        self._pending.clear()
        self.slots.clear()
