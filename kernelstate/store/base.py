"""The session store seam: get/put/delete of opaque (already signed) records with a time to live.

Engines are synchronous and thread-safe; :class:`~kernelstate.store.worker.StoreWorker`
runs them off the event loop. Every engine failure that means "the store
cannot be reached right now" is raised as :class:`StoreUnavailableError`, so
callers degrade (no recovery) instead of crashing.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ..errors import KernelstateError

__all__ = ["SessionStore", "StoreError", "StoreUnavailableError", "TamperedRecordError"]


class StoreError(KernelstateError):
    """Base of the session store's errors."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store could not be reached or answered with an error (the message names it and why)."""


class TamperedRecordError(StoreError, ValueError):
    """A stored record's signature does not match: it was changed, or signed with another key."""


class SessionStore(Protocol):
    """Where recoverable session records live (one machine: SQLite; several: Redis)."""

    #: The store's address without any password, for log lines.
    description: str

    def get(self, key: str) -> bytes | None:
        """The record at ``key``, or None when there is none (or it expired)."""

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` at ``key`` for ``ttl_s`` seconds (replacing what was there)."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is absent)."""

    def touch(self, keys: Iterable[str], ttl_s: float) -> set[str]:
        """Extend the life of ``keys`` to ``ttl_s`` from now; return the keys that were missing."""

    def close(self) -> None:
        """Release connections and files."""
