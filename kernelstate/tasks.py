"""Process-wide named tasks: ``ks.state.schedule_task`` / ``cancel_task``.

A task is identified by its name; scheduling a name that already exists does
nothing and returns the existing task (so a served script that runs once per
session registers its task once). A task that has run for the last time (an
``at=`` schedule that is used up) is dropped, so its name is free again. A task
whose event loop has stopped (a ``ks.serve(threaded=True)`` server that was
stopped) is replaced by the next ``schedule_task`` of its name.

Tasks run on the event loop that was running when they were scheduled, or on
the thread pool with ``threaded=True``; they belong to no session, survive
session destruction, and run with no session current. A coroutine callback
runs as an asyncio task of the named task (cancelled by ``cancel_task``).
Failures are logged with ``session=-`` and handed to the process-level
``ks.config.exception_handler``.

Across processes: with a shared session store (:mod:`kernelstate.cluster`),
each occurrence is claimed in the store before it runs, so a named task runs
once per occurrence across every process that scheduled it; a ``period=``
task's times are then aligned to a grid of its period (from the UNIX epoch),
so every process computes the same fire times. A process that dies claims
nothing: the others keep running the task. On one process, every claim is
granted.

Times: ``at=`` datetimes without a timezone are local wall-clock time;
timezone-aware ones are converted to local time. Timing comes from the clock
that was the default when the task was scheduled
(``kernelstate.testing.FakeClock`` in tests).
"""
from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import inspect
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from croniter import croniter

from .clock import Clock, TimerHandle, default_clock
from .cluster.coordinator import coordinator
from .errors import NoEventLoopError
from .failures import RateLimitedLog, callback_failed
from .loops import running_loop
from .scheduling import callback_name
from .threads import thread_pool

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


def local_time(when: Any, name: str) -> dt.datetime:
    """``when`` as a naive local datetime (aware datetimes are converted); anything else raises TypeError."""
    if not isinstance(when, dt.datetime):
        raise TypeError(
            f"schedule_task({name!r}): at= must give datetime.datetime values; got {type(when).__name__} {when!r}"
        )
    if when.tzinfo is not None and when.utcoffset() is not None:
        return when.astimezone().replace(tzinfo=None)
    return when.replace(tzinfo=None)


def _grid_after(now: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """The first multiple of ``period`` since the UNIX epoch after ``now`` (naive local time)."""
    step = period.total_seconds()
    return dt.datetime.fromtimestamp((math.floor(now.timestamp() / step) + 1) * step)


def _takes_now(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts one positional argument (``at(now)``) rather than none."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(None)
    except TypeError:
        return False
    return True


class _AtTimes:
    """The times an ``at=`` argument gives, as naive local datetimes.

    ``at`` is one datetime, an iterable of them, or a callable. A callable is
    called as ``at(now)`` (or ``at()`` if it takes no argument): returning a
    datetime makes it a "next time" function asked again after each run, where
    ``None`` ends the task; returning an iterable gives the times, like passing
    the iterable itself.
    """

    def __init__(self, name: str, at: Any, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.asks = False
        self._fn: Callable[[], Any] | None = None
        self._iter: Iterator[Any] | None = None
        if isinstance(at, dt.datetime):
            self._iter = iter([at])
        elif callable(at):
            fn = at
            self._fn = (lambda: fn(clock.now())) if _takes_now(fn) else fn
        elif isinstance(at, Iterable) and not isinstance(at, (str, bytes, dict)):
            self._iter = iter(at)
        else:
            raise TypeError(
                f"schedule_task({name!r}): at= must be a datetime, an iterable of datetimes, or a callable "
                f"at(now) returning the next datetime (or None to stop); got {type(at).__name__} {at!r}"
            )

    def next(self) -> dt.datetime | None:
        """The next time, or None when there are no more. Raises TypeError for a value that is not a datetime."""
        if self._fn is not None and self._iter is None:
            value = self._fn()
            if value is None:
                return None
            if isinstance(value, dt.datetime):
                self.asks = True
                return local_time(value, self.name)
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
                self._iter = iter(value)
                self._fn = None
            else:
                raise TypeError(
                    f"schedule_task({self.name!r}): the at= function must return a datetime, None or an "
                    f"iterable of datetimes; got {type(value).__name__} {value!r}"
                )
        assert self._iter is not None
        for value in self._iter:
            return local_time(value, self.name)
        return None


class ScheduledTask:
    """One named task; computes its own next firing time."""

    def __init__(self, name: str, callback: Callable[[], Any], clock: Clock,
                 loop: asyncio.AbstractEventLoop | None, at: Any, period: Any,
                 cron: str | None, threaded: bool) -> None:
        if not callable(callback):
            raise TypeError(f"schedule_task({name!r}): the callback must be callable; got {callback!r}")
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
        self.finished = False
        self.on_finished: Callable[[ScheduledTask], None] | None = None
        self._handle: TimerHandle | None = None
        self._log = RateLimitedLog()
        self._running: set[asyncio.Future[Any]] = set()
        self._at = _AtTimes(name, at, clock) if at is not None else None
        self._cron_iter = croniter(cron, clock.now()) if cron is not None else None
        self._last: dt.datetime | None = None
        self.next_run: dt.datetime | None = None
        self.occurrence: dt.datetime | None = None   # the due time of the run in progress (or the last one)
        self._first = self._next_time()  # validates at= now, before the name is registered

    def _next_time(self) -> dt.datetime | None:
        now = self.clock.now()
        if self._cron_iter is not None:
            nxt: dt.datetime = self._cron_iter.get_next(dt.datetime)
            while nxt < now:
                nxt = self._cron_iter.get_next(dt.datetime)
            return nxt
        base = self._last
        if self._at is not None:
            while (when := self._at.next()) is not None:
                if self._at.asks and self._last is not None and when <= self._last:
                    app_log.error("scheduled task %r ends: its at= function returned %s, not after its "
                                  "previous run at %s (return None to end a task)", self.name, when, self._last)
                    return None
                if when >= now or self.period is None:
                    return when
                base = max(base, when) if base is not None else when  # a past time: repeat from it
            self._at = None
            if self.period is None:
                return None
        if self.period is not None:
            nxt = (base or now) + self.period
            if base is None and coordinator().shared:
                nxt = _grid_after(now, self.period)
            while nxt < now:
                nxt += self.period
            return nxt
        return None

    def loop_gone(self) -> bool:
        """True when the task's event loop has stopped, so its timers never fire again."""
        return self.clock.needs_loop() and self.loop is not None and (self.loop.is_closed() or not self.loop.is_running())

    def arm(self, when: dt.datetime | None = None) -> None:
        if self.finished:
            return
        if when is None and self._first is not None:
            when, self._first = self._first, None
        elif when is None:
            try:
                when = self._next_time()
            except Exception as exc:
                callback_failed(f"scheduled task {self.name!r}: computing its next time", None, exc, self._log)
                when = None
        self.next_run = when
        if when is None:
            self._finish()
            return
        delay_ms = (when - self.clock.now()).total_seconds() * 1000.0
        # Timers copy the caller's context. A task scheduled from app code would
        # otherwise run (forever) with that session current and keep it alive
        # after it is destroyed; a process-wide task belongs to no session.
        self._handle = contextvars.Context().run(self.clock.call_later, delay_ms, self._fire, self.loop)

    def _finish(self) -> None:
        self.finished = True
        if self.on_finished is not None:
            self.on_finished(self)

    def _fire(self) -> None:
        self._handle = None
        self._last = due = self.next_run
        shared = coordinator()
        if not shared.shared or due is None:
            self._run(due)
        else:
            # Claim the occurrence in the shared store off the loop: a slow or unreachable
            # store never stalls the event loop; the callback runs on the loop once claimed.
            expiry = max(60.0, 2 * self.period.total_seconds()) if self.period is not None else 86400.0
            if self.loop is None:
                if shared.claim(self.name, due, expiry):
                    self._run(due)
            else:
                claim = thread_pool.get().submit(shared.claim, self.name, due, expiry)
                claim.add_done_callback(functools.partial(self._claim_done, due))
        self.arm()

    def _claim_done(self, due: dt.datetime, claim: Future[bool]) -> None:
        """On a pool thread: run the occurrence on the task's loop if this process claimed it."""
        if claim.cancelled():
            return
        exc = claim.exception()
        if exc is not None:   # not an outage (claim() answers True then): a bug; run rather than skip
            callback_failed(f"scheduled task {self.name!r}: claiming its occurrence at {due}", None, exc, self._log)
        elif not claim.result():
            return   # another process runs this occurrence
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(self._run_claimed, due)
        except RuntimeError:   # the loop closed meanwhile
            pass

    def _run_claimed(self, due: dt.datetime) -> None:
        if not self.finished:
            self._run(due)

    def _run(self, due: dt.datetime | None) -> None:
        self.occurrence = due
        self.runs += 1
        what = f"scheduled task {self.name!r} ({callback_name(self.callback)})"
        if self.threaded:
            future = thread_pool.get().submit(self.callback)
            future.add_done_callback(functools.partial(_thread_done, self._log, what))
        else:
            try:
                result = self.callback()
                if inspect.isawaitable(result):
                    self._spawn(result, what)
            except Exception as exc:
                callback_failed(what, None, exc, self._log)

    def _spawn(self, awaitable: Any, what: str) -> None:
        if self.loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise NoEventLoopError(f"{what} returned a coroutine but no event loop is running")
        task = asyncio.ensure_future(awaitable, loop=self.loop)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(functools.partial(_task_done, self._log, what))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for task in list(self._running):
            task.cancel()
        self._running.clear()
        self.next_run = None
        self.finished = True

    def __repr__(self) -> str:
        return f"<ScheduledTask {self.name!r} runs={self.runs} next_run={self.next_run}>"


def _thread_done(errors: RateLimitedLog, what: str, future: Future[Any]) -> None:
    exc = future.exception() if not future.cancelled() else None
    if exc is not None:
        callback_failed(what, None, exc, errors)


def _task_done(errors: RateLimitedLog, what: str, task: asyncio.Future[Any]) -> None:
    exc = task.exception() if not task.cancelled() else None
    if exc is not None:
        callback_failed(what, None, exc, errors)


class TaskRegistry:
    """The process-wide registry of named tasks."""

    def __init__(self) -> None:
        self._tasks: dict[str, ScheduledTask] = {}
        self._lock = threading.Lock()

    def schedule(self, name: str, callback: Callable[[], Any], at: Any = None, period: Any = None,
                 cron: str | None = None, threaded: bool = False) -> ScheduledTask:
        """Register and arm a task; every argument is checked before the name is taken."""
        with self._lock:
            existing = self._tasks.get(name)
            if existing is not None and not existing.loop_gone():
                return existing
            clock = default_clock()
            loop = running_loop()
            if loop is None and clock.needs_loop():
                raise NoEventLoopError(
                    f"schedule_task({name!r}) needs a running event loop: call it from a served app, "
                    "a --setup script, a notebook kernel or a coroutine"
                )
            task = ScheduledTask(name, callback, clock, loop, at, period, cron, threaded)
            if existing is not None:
                app_log.info("replacing scheduled task %r: the event loop it ran on has stopped", name)
                existing.cancel()
            task.on_finished = self._drop
            self._tasks[name] = task
        task.arm()
        return task

    def _drop(self, task: ScheduledTask) -> None:
        with self._lock:
            if self._tasks.get(task.name) is task:
                del self._tasks[task.name]

    def cancel(self, name: str) -> bool:
        """Cancel a task by name; returns whether it was scheduled (finished tasks are gone)."""
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
