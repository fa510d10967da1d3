"""FakeClock: virtual time for deterministic scheduling tests and notebooks.

Use it as a context manager; sessions, periodic callbacks and
``schedule_task`` created inside the block use virtual time::

    with FakeClock() as clock:
        cb = ks.state.add_periodic_callback(tick, period=100)
        clock.advance(350)      # runs tick at 100, 200 and 300 ms, in order
"""
from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
from collections.abc import Callable
from types import TracebackType

from ..clock import use_clock


class _FakeHandle:
    def __init__(self, clock: FakeClock, when: float) -> None:
        self.when = when
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A virtual clock; nothing happens until ``advance``."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.start = start or dt.datetime(2026, 1, 1, 0, 0, 0)
        self._now_ms = 0.0
        self._heap: list[tuple[float, int, _FakeHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cm = use_clock(self)

    # Clock protocol
    def monotonic_ms(self) -> float:
        return self._now_ms

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(milliseconds=self._now_ms)

    def call_later(self, delay_ms: float, fn: Callable[[], None], loop: asyncio.AbstractEventLoop | None) -> _FakeHandle:
        handle = _FakeHandle(self, self._now_ms + max(delay_ms, 0.0))
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle, fn))
        return handle

    def needs_loop(self) -> bool:
        return False

    # driving time
    def advance(self, ms: float) -> int:
        """Move time forward by ``ms``, running everything due in time order; returns how many ran."""
        target = self._now_ms + ms
        ran = 0
        while self._heap and self._heap[0][0] <= target:
            when, _, handle, fn = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self._now_ms = max(self._now_ms, when)
            fn()
            ran += 1
        self._now_ms = target
        return ran

    def advance_to(self, when: dt.datetime) -> int:
        """Advance to a wall-clock time (for ``at=`` and cron tasks)."""
        return self.advance((when - self.now()).total_seconds() * 1000.0)

    @property
    def pending(self) -> int:
        return sum(1 for *_, h, _ in self._heap if not h.cancelled)

    def __enter__(self) -> FakeClock:
        self._cm.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._cm.__exit__(exc_type, exc, tb)
