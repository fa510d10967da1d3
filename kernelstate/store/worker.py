"""StoreWorker: runs a store's calls on one thread of its own, and says once when the store is down.

Calls run in submission order (one thread), so a session's put and later
delete cannot swap. The event loop never waits on the store: an unreachable
Redis costs a timeout on this thread, not a stalled server.

Outages: the first failed call logs one ERROR line naming the store and the
consequence; calls while it stays down log nothing; the first call that
succeeds again logs one INFO line and runs the ``on_back`` callback (which
rewrites the records of live sessions: a restarted Redis has lost them).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .base import SessionStore, StoreUnavailableError

__all__ = ["StoreWorker"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreWorker:
    """A :class:`SessionStore` behind a one-thread executor, with outage bookkeeping."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.available = True
        self.on_back: Callable[[], None] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kernelstate-store")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the running loop, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the store thread; raise StoreUnavailableError (logged once per outage)."""
        if self._closed:
            raise StoreUnavailableError(f"session store {self.store.description} is closed (the server stopped)")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, fn, *args)
        except StoreUnavailableError as exc:
            self._down(exc)
            raise
        self._up()
        return result

    def call_blocking(self, fn: Callable[..., T], *args: Any, timeout_s: float = 5.0) -> T:
        """Run ``fn(*args)`` on the store thread and wait for it here (shutdown only)."""
        try:
            result = self._pool.submit(fn, *args).result(timeout_s)
        except StoreUnavailableError as exc:
            self._down(exc)
            raise
        except concurrent.futures.TimeoutError:
            late = StoreUnavailableError(f"session store {self.store.description} did not answer within {timeout_s} s")
            self._down(late)
            raise late from None
        self._up()
        return result

    def _down(self, exc: StoreUnavailableError) -> None:
        if self.available:
            self.available = False
            log.error("%s. Sessions keep working in this process, but cannot be recovered by another process "
                      "(tabs whose session is not here are told to reload) until the store is back", exc)

    def _up(self) -> None:
        if not self.available:
            self.available = True
            log.info("session store %s is reachable again: recording and recovering sessions resumes",
                     self.store.description)
            if self.on_back is not None:
                self.on_back()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=False)
        try:
            self.store.close()
        except Exception:
            log.exception("closing the session store %s failed", self.store.description)
