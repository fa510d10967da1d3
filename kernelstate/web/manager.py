"""SessionManager: every live session of a server, their lifetimes and expiry.

The manager works through the :class:`~kernelstate.host.DocumentHost` seam
only, so the same code manages in-process sessions (standalone server) and
kernel-hosted ones (Jupyter extension).

Lifecycle rules:
- a session is created per page request (or, for a cached reuse page, when
  its WebSocket first connects: a *pending* id waits until then);
- a session with no connection for ``unused_session_lifetime_ms`` is
  destroyed at the next check (every ``check_unused_sessions_ms``);
- a pending id that never connects expires with its token.

All methods run on the server's event loop.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..host import DocumentHost
from ..loading import AppSpec
from ..session import RequestInfo
from ..sync import CloseCode

log = logging.getLogger(__name__)

HostFactory = Callable[[AppSpec, RequestInfo, str], Awaitable[DocumentHost]]


class SessionLimitError(Exception):
    """The server is at its session cap."""


@dataclass
class SessionEntry:
    id: str
    app: AppSpec
    host: DocumentHost
    created: float = field(default_factory=time.monotonic)
    connections: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    ever_connected: bool = False


@dataclass
class PendingSession:
    app: AppSpec
    request: RequestInfo
    expires: float


class SessionManager:
    """Owns the sessions of one server (standalone or Jupyter)."""

    def __init__(self, create_host: HostFactory, unused_session_lifetime_ms: int = 15000,
                 max_sessions: int | None = None, max_pending: int = 10000) -> None:
        self._create_host = create_host
        self.unused_lifetime_s = unused_session_lifetime_ms / 1000.0
        self.max_sessions = max_sessions
        self._entries: dict[str, SessionEntry] = {}
        self._pending: OrderedDict[str, PendingSession] = OrderedDict()
        self._creating: dict[str, asyncio.Future[SessionEntry]] = {}
        self._max_pending = max_pending
        self.created_total = 0
        self.destroyed_total = 0

    # -- queries ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> SessionEntry | None:
        return self._entries.get(session_id)

    def entries(self) -> list[SessionEntry]:
        return list(self._entries.values())

    def _check_capacity(self) -> None:
        if self.max_sessions is not None and len(self._entries) + len(self._creating) >= self.max_sessions:
            raise SessionLimitError(f"the server is at its limit of {self.max_sessions} sessions")

    # -- creation -------------------------------------------------------------------
    async def create(self, app: AppSpec, request: RequestInfo, session_id: str) -> SessionEntry:
        """Create (once, even if asked concurrently) the session ``session_id``."""
        existing = self._entries.get(session_id)
        if existing is not None:
            return existing
        inflight = self._creating.get(session_id)
        if inflight is not None:
            return await asyncio.shield(inflight)
        self._check_capacity()
        future: asyncio.Future[SessionEntry] = asyncio.get_running_loop().create_future()
        self._creating[session_id] = future
        try:
            host = await self._create_host(app, request, session_id)
            entry = SessionEntry(session_id, app, host)
            self._entries[session_id] = entry
            self.created_total += 1
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            self._creating.pop(session_id, None)

    def add_pending(self, session_id: str, app: AppSpec, request: RequestInfo, ttl_s: float) -> None:
        """Remember a session to create when its WebSocket connects (reuse pages)."""
        self._check_capacity()
        self._pending[session_id] = PendingSession(app, request, time.monotonic() + ttl_s)
        while len(self._pending) > self._max_pending:
            self._pending.popitem(last=False)

    async def claim_pending(self, session_id: str) -> SessionEntry | None:
        pending = self._pending.pop(session_id, None)
        if pending is None:
            return None
        if time.monotonic() >= pending.expires:
            return None
        return await self.create(pending.app, pending.request, session_id)

    # -- connections -------------------------------------------------------------
    def connected(self, entry: SessionEntry) -> None:
        entry.connections += 1
        entry.ever_connected = True

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
        try:
            entry.host.destroy(code, reason)
        except Exception:
            log.exception("destroying session failed (session=%s)", session_id)
        return True

    def cleanup(self) -> int:
        """Destroy sessions idle past their lifetime; drop expired pending ids."""
        now = time.monotonic()
        expired = [
            e.id for e in self._entries.values()
            if e.connections == 0 and now - e.idle_since >= self.unused_lifetime_s
        ]
        for sid in expired:
            log.debug("session expired after %.1fs unused (session=%s)", now - self._entries[sid].idle_since, sid)
            self.destroy(sid, CloseCode.SESSION_EXPIRED, "session expired: reload the page")
        for sid in [sid for sid, p in self._pending.items() if now >= p.expires]:
            self._pending.pop(sid, None)
        return len(expired)

    def destroy_all(self, code: int = CloseCode.SERVER_STOPPING, reason: str = "server stopped: reload the page") -> None:
        for sid in list(self._entries):
            self.destroy(sid, code, reason)
        self._pending.clear()
