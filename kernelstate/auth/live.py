"""Logins whose revocation also closes the WebSockets opened under them.

Logout revokes the login record, so no new request gets in with its cookie;
:class:`LiveLogins` also closes, with ``CloseCode.SIGNED_OUT``, every
WebSocket this process accepted under that login (the login gate tracks
them). Connections are held weakly: a closed one costs nothing. With a store
shared by several processes, :class:`~kernelstate.auth.shared_logins.WatchedLogins`
also closes the other processes' open WebSockets at their next periodic check.
"""
from __future__ import annotations

import logging
from typing import Protocol
from weakref import WeakSet

from ..endpoint import CloseCode
from .identity import User
from .logins import Login, LoginRecords

log = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class LiveLogins:
    """A :class:`LoginRecords` that closes a revoked login's tracked connections."""

    def __init__(self, records: LoginRecords) -> None:
        self.records = records
        self._connections: dict[str, WeakSet[Closable]] = {}

    def issue(self, user: User, *, refresh_token: str | None = None,
              access_expires_at: float | None = None) -> Login:
        return self.records.issue(user, refresh_token=refresh_token, access_expires_at=access_expires_at)

    def get(self, login_id: str) -> Login | None:
        return self.records.get(login_id)

    def replace(self, login: Login) -> None:
        self.records.replace(login)

    def revoke(self, login_id: str) -> None:
        self.records.revoke(login_id)
        connections = list(self._connections.pop(login_id, ()))
        for connection in connections:
            connection.close(CloseCode.SIGNED_OUT, "signed out: sign in again")
        if connections:
            log.info("closed %d WebSocket(s) of a login that ended", len(connections))

    def track(self, login_id: str, connection: Closable) -> None:
        """Close ``connection`` when ``login_id`` is revoked."""
        self._connections.setdefault(login_id, WeakSet()).add(connection)
        for key in [k for k, v in self._connections.items() if not v]:
            del self._connections[key]

    def tracked_logins(self) -> list[str]:
        """The ids of logins with open connections in this process."""
        return [login_id for login_id, connections in self._connections.items() if connections]
