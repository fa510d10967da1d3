"""Scheduling: periodic callbacks, ``execute``, ``onload`` and thread offload.

One :class:`Scheduler` per session owns everything that session scheduled;
``Scheduler.stop()`` (called by ``Session.destroy``) cancels all of it, so no
tick or task of a destroyed session ever runs. Process-wide named tasks
(``schedule_task``) live in :mod:`kernelstate.tasks`.

Threading: timers fire on the session's event loop. Work sent to the thread
pool runs under a copy of the caller's context, so ``ks.state`` inside a
thread still sees its session. All times are milliseconds.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .clock import Clock, TimerHandle, default_clock
from .context import activate
from .errors import NoEventLoopError, SessionDestroyedError

if TYPE_CHECKING:
    from .session import Session

app_log = logging.getLogger("kernelstate.application")


class _RateLimitedLog:
    """Logs a callback's failures: first in full, then at most one line a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._suppressed = 0
        self._count = 0

    def failed(self, what: str, session_id: str) -> None:
        self._count += 1
        now = time.monotonic()
        if self._count == 1:
            app_log.exception("%s failed (session=%s)", what, session_id)
            self._last = now
        elif now - self._last >= 1.0:
            app_log.error(
                "%s failed again (session=%s; %d failures in all, %d not logged)",
                what, session_id, self._count, self._suppressed,
            )
            self._last = now
            self._suppressed = 0
        else:
            self._suppressed += 1


def callback_name(cb: Callable[..., Any]) -> str:
    return getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None) or repr(cb)


class _Pool:
    """The process thread pool, sized by ``config.nthreads`` on first use."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                from .settings import config

                self._executor = ThreadPoolExecutor(
                    max_workers=config.process_value("nthreads") or None,
                    thread_name_prefix="kernelstate",
                )
            return self._executor

    def resize(self, nthreads: int | None) -> None:
        with self._lock:
            old, self._executor = self._executor, None
            if nthreads is not None:
                self._executor = ThreadPoolExecutor(max_workers=nthreads or None, thread_name_prefix="kernelstate")
        if old is not None:
            old.shutdown(wait=False)


thread_pool = _Pool()


def run_in_thread(session: Session, fn: Callable[[], Any]) -> Future[Any]:
    """Run ``fn`` on the pool with a copied context in which ``session`` is active."""
    ctx = contextvars.copy_context()

    def run() -> Any:
        with activate(session):
            return fn()

    return thread_pool.get().submit(functools.partial(ctx.run, run))


class PeriodicCallback:
    """A callback run every ``period`` ms on the session's loop.

    Args:
        callback: sync or async callable taking no arguments.
        period: interval in milliseconds.
        count: stop after this many ticks (None: no limit).
        timeout: stop once this many milliseconds have passed since start.
    """

    def __init__(self, scheduler: Scheduler, callback: Callable[[], Any], period: float,
                 count: int | None, timeout: float | None) -> None:
        if period <= 0:
            raise ValueError(f"period must be a positive number of milliseconds; got {period!r}")
        if count is not None and count < 1:
            raise ValueError(f"count must be None or >= 1; got {count!r}")
        self._scheduler = scheduler
        self._clock = scheduler.clock
        self.callback = callback
        self._period = float(period)
        self.count = count
        self.timeout = timeout
        self.counter = 0
        self._handle: TimerHandle | None = None
        self._active = False
        self._started_ms = 0.0
        self._next_ms = 0.0
        self._log = _RateLimitedLog()

    @property
    def period(self) -> float:
        """Interval in milliseconds; setting it restarts a running callback."""
        return self._period

    @period.setter
    def period(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"period must be a positive number of milliseconds; got {value!r}")
        self._period = float(value)
        if self.running:
            self._cancel_timer()
            self._next_ms = self._clock.monotonic_ms() + self._period
            self._arm()

    @property
    def running(self) -> bool:
        return self._active

    def start(self) -> None:
        """Start ticking (a no-op if already running)."""
        if self.running:
            return
        self._scheduler.check_alive()
        self._started_ms = self._clock.monotonic_ms()
        self._next_ms = self._started_ms + self._period
        self._scheduler.periodic.add(self)
        self._active = True
        self._arm()

    def stop(self) -> None:
        """Stop ticking; ``start()`` starts again with a fresh timeout window."""
        self._active = False
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        delay = self._next_ms - self._clock.monotonic_ms()
        self._handle = self._scheduler.call_later(delay, self._tick, self._clock)

    def _tick(self) -> None:
        self._handle = None
        if not self._scheduler.alive or not self._active:
            return
        now = self._clock.monotonic_ms()
        if self.timeout is not None and now - self._started_ms > self.timeout:
            self._active = False
            return
        self.counter += 1
        self._scheduler.invoke(self.callback, f"periodic callback {callback_name(self.callback)}", self._log)
        if self.count is not None and self.counter >= self.count:
            self._active = False
            return
        if self._handle is not None or not self._active or not self._scheduler.alive:
            return  # period changed, or stopped, from inside the callback
        # Drift-free: aim at the ideal next time, but never schedule in the past.
        self._next_ms += self._period
        if self._next_ms < now:
            self._next_ms = now + self._period
        if self.timeout is not None and self._next_ms - self._started_ms > self.timeout:
            self._active = False
            return
        self._arm()

    def __repr__(self) -> str:
        return f"PeriodicCallback({callback_name(self.callback)}, period={self._period:g}ms, counter={self.counter}, running={self.running})"


class Scheduler:
    """Everything one session scheduled: timers, tasks, the onload queue."""

    def __init__(self, session: Session, clock: Clock | None = None) -> None:
        self.session = session
        self._clock = clock
        self.periodic: set[PeriodicCallback] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: set[TimerHandle] = set()
        self.onload_queue: list[tuple[Callable[[], Any], bool]] = []
        self.alive = True

    @property
    def clock(self) -> Clock:
        """The fixed clock of this scheduler, else the current default clock."""
        return self._clock or default_clock()

    # -- loop -----------------------------------------------------------------
    def check_alive(self) -> None:
        if not self.alive:
            raise SessionDestroyedError(
                f"session {self.session.id} was destroyed; it cannot schedule more work"
            )

    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.session.event_loop()

    def call_later(self, delay_ms: float, fn: Callable[[], None], clock: Clock | None = None) -> TimerHandle:
        clock = clock or self.clock
        loop = self.loop()
        if loop is None and clock.needs_loop():
            raise NoEventLoopError(
                "add_periodic_callback needs a running event loop: call it from a served app, "
                "a notebook kernel, or a coroutine; a plain script has none"
            )
        handle: TimerHandle | None = None

        def fire() -> None:
            self.timers.discard(handle)  # type: ignore[arg-type]
            fn()

        handle = clock.call_later(delay_ms, fire, loop)
        self.timers.add(handle)
        return handle

    # -- running user code ----------------------------------------------------
    def invoke(self, fn: Callable[[], Any], what: str, errors: _RateLimitedLog | None = None) -> None:
        """Run ``fn`` with the session active; failures are logged, never raised."""
        session = self.session
        session.busy_enter()
        try:
            with activate(session):
                result = fn()
        except Exception:
            (errors or _RateLimitedLog()).failed(what, session.id)
            session.busy_exit()
            return
        if inspect.isawaitable(result):
            self.spawn(result, what, errors, busy=True)
        else:
            session.busy_exit()

    def spawn(self, awaitable: Any, what: str, errors: _RateLimitedLog | None = None, busy: bool = False) -> asyncio.Task[Any] | None:
        """Run a coroutine as a task of this session (cancelled on destroy)."""
        session = self.session
        loop = self.loop()
        if loop is None:
            if busy:
                session.busy_exit()
            raise NoEventLoopError(f"{what} is a coroutine but there is no running event loop to run it on")

        async def run() -> Any:
            try:
                with activate(session):
                    return await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                (errors or _RateLimitedLog()).failed(what, session.id)
            finally:
                if busy:
                    session.busy_exit()

        ctx = contextvars.copy_context()
        task = loop.create_task(run(), context=ctx)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def add_periodic(self, callback: Callable[[], Any], period: float = 500, count: int | None = None,
                     timeout: float | None = None, start: bool = True) -> PeriodicCallback:
        self.check_alive()
        cb = PeriodicCallback(self, callback, period, count, timeout)
        self.periodic.add(cb)
        if start:
            self.on_loop(cb.start)
        return cb

    def on_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now if we are on the session's loop (or it has none), else on it."""
        loop = self.loop()
        if loop is None or _on_loop(loop):
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def execute(self, fn: Callable[[], Any], schedule: bool | str = "auto") -> Any:
        """See ``ks.state.execute``."""
        self.check_alive()
        what = f"callback {callback_name(fn)}"
        if schedule == "thread":
            return run_in_thread(self.session, fn)
        if schedule not in ("auto", True):
            raise ValueError(f"schedule must be 'auto', True or 'thread'; got {schedule!r}")
        loop = self.loop()
        if loop is None:
            if schedule is True:
                raise NoEventLoopError("execute(schedule=True) needs a running event loop")
            return self.invoke(fn, what)
        if schedule == "auto" and _on_loop(loop):
            return self.invoke(fn, what)
        loop.call_soon_threadsafe(self._invoke_if_alive, fn, what)
        return None

    def _invoke_if_alive(self, fn: Callable[[], Any], what: str) -> None:
        if self.alive:
            self.invoke(fn, what)

    # -- onload ---------------------------------------------------------------
    def onload(self, fn: Callable[[], Any], threaded: bool = False) -> None:
        self.check_alive()
        if self.session.loaded:
            self._run_onload(fn, threaded)
        else:
            self.onload_queue.append((fn, threaded))

    def run_onload(self) -> None:
        queue, self.onload_queue = self.onload_queue, []
        for fn, threaded in queue:
            self._run_onload(fn, threaded)

    def _run_onload(self, fn: Callable[[], Any], threaded: bool) -> None:
        if threaded:
            future = run_in_thread(self.session, fn)
            future.add_done_callback(functools.partial(_log_thread_failure, f"onload {callback_name(fn)}", self.session.id))
        else:
            self.invoke(fn, f"onload {callback_name(fn)}")

    # -- teardown -------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every timer, periodic callback and task. Idempotent."""
        self.alive = False
        for cb in list(self.periodic):
            cb.stop()
        self.periodic.clear()
        for handle in list(self.timers):
            handle.cancel()
        self.timers.clear()
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()
        self.onload_queue.clear()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _log_thread_failure(what: str, session_id: str, future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        app_log.error("%s failed (session=%s)", what, session_id, exc_info=exc)
