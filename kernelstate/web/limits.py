"""Session slots: how many sessions the server, and each client address, may hold at once.

A *slot* is held by a live session, a session being created, and a pending
session (a reuse page) inside its first-connect window. ``max_sessions``
bounds them all; ``max_per_client`` bounds those created for one client
address, so one client cannot take the whole cap. IPv6 clients count per
/64 network: one host is usually given a whole /64.

Beyond a limit, :class:`SessionLimitError` says which limit was hit; both
hosts answer it with 503 (a page) or close code ``SERVER_STOPPING`` (a
WebSocket that came for a pending session).
"""
from __future__ import annotations

import ipaddress
from collections import Counter

from ..errors import KernelstateError

DEFAULT_SESSIONS_PER_CLIENT = 100


class SessionLimitError(KernelstateError):
    """The server, or one client address, is at its session cap (the message says which)."""


def client_key(ip: str | None) -> str:
    """The address a client's sessions and connections are counted under."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def sessions_per_client(configured: int | None, max_sessions: int | None) -> int | None:
    """The per-client limit in force: ``configured`` (0: none), or by default half of
    ``max_sessions`` (at least 1), or :data:`DEFAULT_SESSIONS_PER_CLIENT` without a cap."""
    if configured is not None:
        return configured or None
    if max_sessions:
        return max(1, max_sessions // 2)
    return DEFAULT_SESSIONS_PER_CLIENT


class SlotCounter:
    """Slots held, in total and per client address; :meth:`take` refuses beyond either limit."""

    def __init__(self, max_total: int | None, max_per_client: int | None) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.total = 0
        self._by_client: Counter[str] = Counter()

    def held_by(self, client: str) -> int:
        return self._by_client.get(client, 0)

    def check(self, client: str) -> None:
        """Raise SessionLimitError if one more slot for ``client`` would exceed a limit."""
        if self.max_total is not None and self.total >= self.max_total:
            raise SessionLimitError(f"the server is at its limit of {self.max_total} sessions")
        if self.max_per_client is not None and self.held_by(client) >= self.max_per_client:
            raise SessionLimitError(f"your address ({client or 'local'}) is at its limit of "
                                    f"{self.max_per_client} sessions on this server; close some of its tabs")

    def take(self, client: str) -> None:
        self.check(client)
        self.total += 1
        self._by_client[client] += 1

    def release(self, client: str) -> None:
        self.total = max(0, self.total - 1)
        left = self._by_client.get(client, 0) - 1
        if left > 0:
            self._by_client[client] = left
        else:
            self._by_client.pop(client, None)

    def clear(self) -> None:
        self.total = 0
        self._by_client.clear()
