"""Slowing repeated login failures, per client address and per user name.

After ``free`` failures within ``window_s``, each further attempt for that
client or that user name waits ``base_s * 2**(n - free - 1)`` seconds (at
most ``max_s``) before its password is even checked. The wait is an
``await asyncio.sleep``: other requests keep being served. A success clears
both counts. The table is bounded (oldest entries are dropped first).
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict


class FailureThrottle:
    def __init__(self, *, free: int = 3, base_s: float = 0.5, max_s: float = 10.0, window_s: float = 900.0,
                 max_keys: int = 10_000) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()   # key -> (count, last failure)

    def delay_for(self, *keys: str) -> float:
        """The wait before the next attempt for these keys (the largest of theirs)."""
        now = time.monotonic()
        worst = 0
        for key in keys:
            count, last = self._failures.get(key, (0, 0.0))
            if count and now - last > self.window_s:
                self._failures.pop(key, None)
                count = 0
            worst = max(worst, count)
        if worst < self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** (worst - self.free)))

    async def wait_for(self, delay: float) -> None:
        """Sleep ``delay`` seconds without blocking the loop (other requests keep being served)."""
        await asyncio.sleep(delay)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            count, _ = self._failures.pop(key, (0, 0.0))
            self._failures[key] = (count + 1, now)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
