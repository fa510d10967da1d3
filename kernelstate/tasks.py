"""Process-wide named tasks: ``ks.state.schedule_task`` / ``cancel_task``.

A task is identified by its name; scheduling a name that already exists does
nothing (so a served script that runs once per session registers its task
once). Tasks run on the event loop that was running when they were scheduled,
or on the thread pool with ``threaded=True``; they do not belong to any
session and survive session destruction. Timing comes from the clock that
was the default when the task was scheduled (``kernelstate.testing.FakeClock``
in tests).
"""
from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from croniter import croniter

from .clock import Clock, TimerHandle, default_clock
from .errors import NoEventLoopError
from .scheduling import _RateLimitedLog, callback_name, thread_pool

app_log = logging.getLogger("kernelstate.application")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_period(period: dt.timedelta | str | float | int) -> dt.timedelta:
    """``"10s"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1w"``, a timedelta, or seconds."""
    if isinstance(period, dt.timedelta):
        value = period
    elif isinstance(period, (int, float)) and not isinstance(period, bool):
        value = dt.timedelta(seconds=period)
    elif isinstance(period, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", period)):
        value = dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    else:
        raise ValueError(
            f"period must be a timedelta, a number of seconds or a string like '10s', '5m', '1h', '1d', '1w'; got {period!r}"
        )
    if value.total_seconds() <= 0:
        raise ValueError(f"period must be positive; got {period!r}")
    return value


class ScheduledTask:
    """One named task; computes its own next firing time."""

    def __init__(self, name: str, callback: Callable[[], Any], clock: Clock,
                 loop: asyncio.AbstractEventLoop | None, at: Any, period: Any,
                 cron: str | None, threaded: bool) -> None:
        if at is None and period is None and cron is None:
            raise ValueError(f"schedule_task({name!r}) needs at=, period= or cron=")
        if cron is not None and (at is not None or period is not None):
            raise ValueError(f"schedule_task({name!r}): cron= cannot be combined with at= or period=")
        if cron is not None and not croniter.is_valid(cron):
            raise ValueError(f"schedule_task({name!r}): invalid cron expression {cron!r}")
        self.name = name
        self.callback = callback
        self.clock = clock
        self.loop = loop
        self.period = parse_period(period) if period is not None else None
        self.cron = cron
        self.threaded = threaded
        self.runs = 0
        self._handle: TimerHandle | None = None
        self._log = _RateLimitedLog()
        self._at_iter: Iterator[dt.datetime] | None = None
        self._at_once: dt.datetime | None = None
        if isinstance(at, dt.datetime):
            self._at_once = at
        elif callable(at):
            self._at_iter = iter(at())
        elif at is not None:
            self._at_iter = iter(at)
        self._cron_iter = croniter(cron, clock.now()) if cron is not None else None
        self._last: dt.datetime | None = None
        self.next_run: dt.datetime | None = None

    def _next_time(self) -> dt.datetime | None:
        now = self.clock.now()
        if self._cron_iter is not None:
            nxt = self._cron_iter.get_next(dt.datetime)
            while nxt < now:
                nxt = self._cron_iter.get_next(dt.datetime)
            return nxt
        if self._at_iter is not None:
            for when in self._at_iter:
                if when >= now or self.period is None:
                    return when
            if self.period is None or self._last is None:
                return None
            return self._last + self.period
        if self._at_once is not None and self.runs == 0:
            return self._at_once
        if self.period is not None:
            base = self._last or (self._at_once if self._at_once is not None else now)
            nxt = base + self.period
            while nxt < now:
                nxt += self.period
            return nxt
        return None

    def arm(self) -> None:
        when = self._next_time()
        self.next_run = when
        if when is None:
            return
        delay_ms = (when - self.clock.now()).total_seconds() * 1000.0
        # Timers copy the caller's context. A task scheduled from app code would
        # otherwise run (forever) with that session current and keep it alive
        # after it is destroyed; a process-wide task belongs to no session.
        self._handle = contextvars.Context().run(self.clock.call_later, delay_ms, self._fire, self.loop)

    def _fire(self) -> None:
        self._handle = None
        self._last = self.next_run
        self.runs += 1
        what = f"scheduled task {self.name!r} ({callback_name(self.callback)})"
        if self.threaded:
            future = thread_pool.get().submit(self.callback)
            future.add_done_callback(functools.partial(_thread_done, self._log, what))
        else:
            try:
                result = self.callback()
                if inspect.isawaitable(result):
                    if self.loop is None:
                        raise NoEventLoopError(f"{what} returned a coroutine but no event loop is running")
                    task = asyncio.ensure_future(result, loop=self.loop)
                    task.add_done_callback(functools.partial(_task_done, self._log, what))
            except Exception:
                self._log.failed(what, "-")
        self.arm()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.next_run = None


def _thread_done(errors: _RateLimitedLog, what: str, future: Any) -> None:
    if future.exception() is not None:
        app_log.error("%s failed (session=-)", what, exc_info=future.exception())


def _task_done(errors: _RateLimitedLog, what: str, task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        app_log.error("%s failed (session=-)", what, exc_info=task.exception())


class TaskRegistry:
    """The process-wide registry of named tasks."""

    def __init__(self) -> None:
        self._tasks: dict[str, ScheduledTask] = {}
        self._lock = threading.Lock()

    def schedule(self, name: str, callback: Callable[[], Any], at: Any = None, period: Any = None,
                 cron: str | None = None, threaded: bool = False) -> ScheduledTask:
        with self._lock:
            if name in self._tasks:
                return self._tasks[name]
            clock = default_clock()
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None and clock.needs_loop():
                raise NoEventLoopError(
                    f"schedule_task({name!r}) needs a running event loop: call it from a served app, "
                    "a --setup script, a notebook kernel or a coroutine"
                )
            task = ScheduledTask(name, callback, clock, loop, at, period, cron, threaded)
            self._tasks[name] = task
        task.arm()
        return task

    def cancel(self, name: str) -> bool:
        """Cancel a task by name; returns whether it existed."""
        with self._lock:
            task = self._tasks.pop(name, None)
        if task is None:
            return False
        task.cancel()
        return True

    def get(self, name: str) -> ScheduledTask | None:
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def cancel_all(self) -> None:
        for name in self.names():
            self.cancel(name)


tasks = TaskRegistry()
