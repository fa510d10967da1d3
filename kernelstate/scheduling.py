"""Scheduling: periodic callbacks, ``execute``, ``onload`` and thread offload.

One :class:`Scheduler` per session owns everything that session scheduled;
``Scheduler.stop()`` (called by ``Session.destroy``) cancels all of it, so no
tick or task of a destroyed session ever runs. Process-wide named tasks
(``schedule_task``) live in :mod:`kernelstate.tasks`.

Threading: timers fire on the session's event loop. Work sent to the thread
pool runs under a copy of the caller's context, so ``ks.state`` inside a
thread still sees its session; work still queued when its session is
destroyed never starts. All times are milliseconds.

Failures of every callback are reported through :mod:`kernelstate.failures`
(logged with the session id, then ``ks.config.exception_handler``).
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .clock import Clock, TimerHandle, default_clock
from .context import activate
from .errors import NoEventLoopError, SessionDestroyedError
from .failures import RateLimitedLog, callback_failed
from .loops import running_loop
from .threads import thread_pool

if TYPE_CHECKING:
    from .session import Session

app_log = logging.getLogger("kernelstate.application")


def callback_name(cb: Callable[..., Any]) -> str:
    return getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None) or repr(cb)


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
        self._log = RateLimitedLog()

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
    """Everything one session scheduled: timers, tasks, thread work, the onload queue.

    It holds its session weakly: a ``PeriodicCallback`` (or anything else of the
    scheduler) kept by process-wide code does not keep a destroyed session alive.
    """

    def __init__(self, session: Session, clock: Clock | None = None) -> None:
        self._session = weakref.ref(session)
        self.session_id = session.id
        self._clock = clock
        self.periodic: set[PeriodicCallback] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: set[TimerHandle] = set()
        self.futures: set[Future[Any]] = set()
        self._futures_lock = threading.Lock()
        self.onload_queue: list[tuple[Callable[[], Any], bool]] = []
        # things with a cancel() that end with the session: subscriptions, offloaded jobs (kernelstate.cluster)
        self.owned: set[Any] = set()
        self.alive = True

    @property
    def session(self) -> Session:
        session = self._session()
        if session is None:
            raise SessionDestroyedError(f"session {self.session_id} was destroyed and no longer exists")
        return session

    @property
    def clock(self) -> Clock:
        """The fixed clock of this scheduler, else the current default clock."""
        return self._clock or default_clock()

    # -- loop -----------------------------------------------------------------
    def check_alive(self) -> None:
        if not self.alive:
            raise SessionDestroyedError(
                f"session {self.session_id} was destroyed; it cannot schedule more work"
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
            self.timers.discard(handle)
            fn()

        handle = clock.call_later(delay_ms, fire, loop)
        self.timers.add(handle)
        return handle

    def own(self, thing: Any) -> None:
        """Cancel ``thing`` (anything with a ``cancel()``) when the session is destroyed; ``disown`` forgets it."""
        self.check_alive()
        self.owned.add(thing)

    def disown(self, thing: Any) -> None:
        self.owned.discard(thing)

    # -- running user code ----------------------------------------------------
    def invoke(self, fn: Callable[[], Any], what: str, errors: RateLimitedLog | None = None) -> None:
        """Run ``fn`` with the session active; failures are reported (log, exception handler), never raised."""
        session = self.session
        session.busy_enter()
        try:
            with activate(session):
                result = fn()
        except Exception as exc:
            session.busy_exit()
            callback_failed(what, session, exc, errors)
            return
        if inspect.isawaitable(result):
            self.spawn(result, what, errors, busy=True)
        else:
            session.busy_exit()

    def spawn(self, awaitable: Any, what: str, errors: RateLimitedLog | None = None, busy: bool = False) -> asyncio.Task[Any] | None:
        """Run a coroutine as a task of this session (cancelled on destroy). Call on the session's loop."""
        session = self.session
        loop = self.loop()
        if loop is None or not self.alive:
            if busy:
                session.busy_exit()
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            if loop is None:
                raise NoEventLoopError(f"{what} is a coroutine but there is no running event loop to run it on")
            return None

        async def run() -> Any:
            try:
                with activate(session):
                    return await awaitable
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                callback_failed(what, session, exc, errors)
            finally:
                if busy:
                    session.busy_exit()

        ctx = contextvars.copy_context()
        task = loop.create_task(run(), context=ctx)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def run_coroutine(self, make: Callable[[], Awaitable[Any]], what: str) -> None:
        """Start a coroutine callback (``make()`` returns the coroutine) as a task of this session.

        From any thread: the coroutine is created and run on the session's loop,
        with the session current; nothing starts once the session is destroyed.
        """
        if not self.alive:
            return
        loop = self.loop()
        if loop is None:
            raise NoEventLoopError(f"{what} is a coroutine but there is no running event loop to run it on")
        if _on_loop(loop):
            self.invoke(make, what)
        else:
            loop.call_soon_threadsafe(self._invoke_if_alive, make, what)

    def submit(self, fn: Callable[[], Any], what: str) -> Future[Any]:
        """Run ``fn`` on the thread pool with this session current (a copy of the caller's context).

        Work still queued when the session is destroyed is cancelled and never
        starts; a failure is reported (log, exception handler) and also set on
        the returned future.
        """
        self.check_alive()
        session = self.session
        ctx = contextvars.copy_context()

        def run() -> Any:
            if not self.alive:
                raise SessionDestroyedError(f"session {self.session_id} was destroyed before {what} started")
            with activate(session):
                return fn()

        future = thread_pool.get().submit(functools.partial(ctx.run, run))
        with self._futures_lock:
            self.futures.add(future)
        future.add_done_callback(functools.partial(self._thread_done, what))
        return future

    def _thread_done(self, what: str, future: Future[Any]) -> None:
        with self._futures_lock:
            self.futures.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None or isinstance(exc, SessionDestroyedError):
            return
        session = self._session()
        if session is not None:
            callback_failed(f"{what} (on a thread)", session, exc)

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
            return self.submit(fn, what)
        if schedule not in ("auto", True):
            raise ValueError(f"schedule must be 'auto', True, 'thread', or somewhere to offload to ('dask', a "
                             f"distributed.Client, a concurrent.futures.Executor); got {schedule!r}")
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
            self.submit(fn, f"onload {callback_name(fn)}")
        else:
            self.invoke(fn, f"onload {callback_name(fn)}")

    # -- teardown -------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every timer, periodic callback, task and queued thread work. Idempotent."""
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
        with self._futures_lock:
            futures = list(self.futures)
        for future in futures:
            future.cancel()  # only work that has not started yet; running work finishes
        for thing in list(self.owned):
            try:
                thing.cancel()
            except Exception:
                app_log.exception("cancelling %r of destroyed session %s failed", thing, self.session_id)
        self.owned.clear()
        self.onload_queue.clear()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    return running_loop() is loop
