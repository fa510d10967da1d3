"""``ks.state.cache`` and ``as_cached``: explicitly process-wide.

The cache is shared by every session (and the kernel). ``as_cached`` computes
a missing key once even under concurrent misses (one lock per key), honours an
optional ``ttl`` in seconds, and keeps at most ``config.cache_max_items``
entries (least recently used dropped first). Do not store per-user objects in
it: they would outlive the user's session.

``shared=True`` goes one step further: with a shared session store (Redis) the
value is computed once across every process and read by the others (a JSON
value or bytes, signed, at most ``config.shared_value_max_bytes``); see
:mod:`kernelstate.cluster.shared_cache`. Each process still keeps it in this
cache too. On one process ``shared=True`` changes nothing.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Cache(OrderedDict[Hashable, Any]):
    """A dict with LRU order; ``as_cached`` is its locked read-through API."""

    def __init__(self) -> None:
        super().__init__()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._expiry: dict[Hashable, float] = {}

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def as_cached(self, key: Hashable, fn: Callable[..., Any], ttl: float | None = None, shared: bool = False,
                  **kwargs: Any) -> Any:
        full_key: Hashable = (key, *sorted(kwargs.items())) if kwargs else key
        with self._lock_for(full_key):
            hit = self._get_fresh(full_key)
            if hit is not _MISSING:
                return hit
            if shared:
                from .cluster.shared_cache import shared_value

                value = shared_value(full_key, lambda: fn(**kwargs), ttl)
            else:
                value = fn(**kwargs)
            with self._guard:
                self[full_key] = value
                self.move_to_end(full_key)
                if ttl is not None:
                    self._expiry[full_key] = time.monotonic() + ttl
                self._trim()
            return value

    def _get_fresh(self, key: Hashable) -> Any:
        with self._guard:
            if key not in self:
                return _MISSING
            expiry = self._expiry.get(key)
            if expiry is not None and time.monotonic() >= expiry:
                del self[key]
                self._expiry.pop(key, None)
                return _MISSING
            self.move_to_end(key)
            return self[key]

    def _trim(self) -> None:
        from ._config import config

        limit = config.process_value("cache_max_items")
        while len(self) > limit:
            old, _ = self.popitem(last=False)
            self._expiry.pop(old, None)
            self._locks.pop(old, None)

    def clear(self) -> None:
        with self._guard:
            super().clear()
            self._expiry.clear()
            self._locks.clear()


_MISSING = object()
cache = Cache()
