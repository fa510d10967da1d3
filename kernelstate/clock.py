"""Clocks: where the scheduler gets "now" and timers from.

The ``Clock`` protocol is the seam that makes scheduling deterministic in
tests: :class:`RealClock` uses the asyncio loop's timers, and
``kernelstate.testing.FakeClock`` advances virtual time on demand.

``use_clock(clock)`` swaps the process-wide default clock for a block; it is
process-wide on purpose (timers created inside the block keep the clock they
were created with).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from .errors import NoEventLoopError


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time source and timer factory used by the scheduler."""

    def monotonic_ms(self) -> float: ...

    def now(self) -> dt.datetime: ...

    def call_later(self, delay_ms: float, fn: Callable[[], None], loop: asyncio.AbstractEventLoop | None) -> TimerHandle: ...

    def needs_loop(self) -> bool: ...


class RealClock:
    """Wall time and the asyncio loop's ``call_later``."""

    def monotonic_ms(self) -> float:
        return time.monotonic() * 1000.0

    def now(self) -> dt.datetime:
        return dt.datetime.now()

    def call_later(self, delay_ms: float, fn: Callable[[], None], loop: asyncio.AbstractEventLoop | None) -> TimerHandle:
        if loop is None:
            raise NoEventLoopError(
                "no running event loop to schedule on; call this from a kernel, a served app, "
                "or inside asyncio.run(...)"
            )
        return loop.call_later(max(delay_ms, 0.0) / 1000.0, fn)

    def needs_loop(self) -> bool:
        return True


_default: list[Clock] = [RealClock()]


def default_clock() -> Clock:
    """The clock new schedulers and tasks use."""
    return _default[-1]


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the default clock inside the block."""
    _default.append(clock)
    try:
        yield clock
    finally:
        _default.remove(clock)
