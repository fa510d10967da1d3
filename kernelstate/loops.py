"""Event-loop helpers written once: the running loop or None, and single-flight async jobs."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (``asyncio.get_running_loop`` raises instead)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SingleFlight[K, V]:
    """At most one run of an async job per key; callers that arrive meanwhile await its result.

    A failure reaches every waiter; the key is free again as soon as the job ends.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def running(self, key: K) -> asyncio.Future[V] | None:
        """The job in flight for ``key``, if any."""
        return self._running.get(key)

    async def run(self, key: K, job: Callable[[], Awaitable[V]]) -> V:
        inflight = self._running.get(key)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await job()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._running.pop(key, None)
