"""``ks.state.execute(fn, *args, schedule=client_or_executor)``: run work elsewhere, get its result back in the session.

``schedule`` is a ``distributed.Client`` (synchronous, or asynchronous on the
session's loop), any ``concurrent.futures.Executor``, or ``"dask"`` (a
process-wide client of ``ks.config.dask_scheduler``, connected on first use).
The call returns an ``asyncio.Future`` of the result on the session's event
loop: ``await`` it in a coroutine callback, and code after the ``await`` runs
in the session, as every coroutine callback does. A failure of the function
is logged with the session id (then ``ks.config.exception_handler``) and set
on the future.

Each call is an :class:`OffloadedJob` owned by the session's scheduler. When
the session is destroyed, its jobs are cancelled: work not yet started is
cancelled (``Future.cancel``), the result of work already running is dropped
when it arrives, and the job's cancellation signal is set so a function that
checks ``ks.cancellation()`` can stop (see :mod:`kernelstate.cluster.cancellation`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NoEventLoopError
from ..failures import callback_failed
from ..scheduling import callback_name
from ..threads import thread_pool
from .cancellation import Cancellation, DaskCancellation, ThreadCancellation, dask_event, run_with

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["OffloadedJob", "offload", "dask_client", "is_offload_target"]

log = logging.getLogger("kernelstate.cluster")
_serial = itertools.count(1)
_client_lock = threading.Lock()
_clients: dict[str, Any] = {}
CLEAR_AFTER_S = 30.0   # a cancelled job's Dask event is forgotten this long after its future ended


def is_offload_target(schedule: Any) -> bool:
    """Whether ``schedule`` names somewhere to offload to (rather than ``"auto"``, ``True``, ``"thread"``)."""
    return schedule == "dask" or isinstance(schedule, concurrent.futures.Executor) or _is_dask_client(schedule)


def _is_dask_client(obj: Any) -> bool:
    if not type(obj).__module__.startswith("distributed"):
        return False
    from distributed import Client

    return isinstance(obj, Client)


def dask_client() -> Any:
    """The process-wide client of ``ks.config.dask_scheduler`` (connected on first use, from a worker thread)."""
    from .._config import config

    address = config.process_value("dask_scheduler")
    if not address:
        raise ConfigError("execute(schedule='dask') needs a Dask scheduler: start the server with --dask-scheduler "
                          "ADDRESS, or set ks.config.dask_scheduler = 'tcp://host:8786' (or pass a Client)")
    with _client_lock:
        client = _clients.get(address)
        if client is None or client.status in ("closed", "closing"):
            from distributed import Client

            make: Any = Client   # distributed is untyped
            client = _clients[address] = make(address, set_as_default=False)
            log.info("connected to the Dask scheduler at %s", address)
        return client


class OffloadedJob:
    """One offloaded call: its result future on the session's loop, and how to cancel it."""

    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], where: str) -> None:
        self._session = weakref.ref(session)
        self.session_id = session.id
        self.loop = loop
        self.what = f"offloaded {callback_name(fn)} (on {where})"
        self.result: asyncio.Future[Any] = loop.create_future()
        self.signal: Cancellation = Cancellation()
        self.cancelled = False
        self.dropped = False       # it ran to its end after its session was gone: its outcome went nowhere
        self.future: Any = None   # the executor's or Dask's future, once submitted
        self._client: Any = None

    # -- submission -------------------------------------------------------------------
    def submit_to_executor(self, executor: concurrent.futures.Executor, fn: Callable[..., Any],
                           args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            self.signal = ThreadCancellation()
        future = executor.submit(run_with, self.signal, fn, args, kwargs)
        self.future = future
        future.add_done_callback(self._executor_done)

    def submit_to_dask(self, client: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        job = hashlib.sha256(self.session_id.encode("utf-8")).hexdigest()[:12]
        serial = next(_serial)
        self.signal = DaskCancellation(f"kernelstate-cancel-{job}-{serial}", client)
        self._client = client
        future = client.submit(run_with, self.signal, fn, args, kwargs, pure=False,
                               key=f"{callback_name(fn)}-kernelstate-{job}-{serial}")
        self.future = future
        if client.asynchronous:
            self.loop.create_task(self._await_dask(future))
        else:
            future.add_done_callback(self._dask_done)
        if self.cancelled:   # the session ended while we were connecting
            self._cancel_submitted()

    # -- outcome (from any thread) ----------------------------------------------------
    def _executor_done(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            self.settle(False, None, None)
        else:
            exc = future.exception()
            self.settle(True, None if exc is not None else future.result(), exc)

    def _dask_done(self, future: Any) -> None:
        if future.status == "cancelled":
            self.settle(False, None, None)
            return
        try:
            value = future.result()
        except Exception as exc:
            self.settle(True, None, exc)
        else:
            self.settle(True, value, None)

    async def _await_dask(self, future: Any) -> None:
        try:
            value = await future
        except asyncio.CancelledError:
            self.settle(False, None, None)
        except Exception as exc:
            self.settle(future.status != "cancelled", None, exc)
        else:
            self.settle(True, value, None)

    def settle(self, ran: bool, value: Any, exc: BaseException | None) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._deliver, ran, value, exc)
        except RuntimeError:   # the loop closed meanwhile: nobody is left to tell
            pass

    def _deliver(self, ran: bool, value: Any, exc: BaseException | None) -> None:
        session = self._session()
        if session is not None:
            session.scheduler.disown(self)
        if self.cancelled or session is None or session.destroyed or not ran:
            if not self.result.done():
                self.result.cancel()
            if ran:
                self.dropped = True
                log.debug("%s finished after session %s ended: result dropped", self.what, self.session_id)
            return
        if self.result.done():
            return
        if exc is not None:
            callback_failed(self.what, session, exc)
            self.result.set_exception(exc)
            self.result.exception()   # reported above: asyncio need not log it again if nobody awaits it
        else:
            self.result.set_result(value)

    # -- cancellation (the session's scheduler calls this on destroy) -----------------
    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if not self.result.done():
            self.result.cancel()
        if self.future is not None:
            self._cancel_submitted()

    def _cancel_submitted(self) -> None:
        future, client, signal = self.future, self._client, self.signal
        if client is None:
            signal.set()
            future.cancel()
            return

        def cancel_on_dask() -> None:
            signal.set()
            client.cancel([future])

        if client.asynchronous:
            self.loop.create_task(_cancel_async(client, future, signal))
        else:
            thread_pool.get().submit(_logged, cancel_on_dask, self.what)
            timer = threading.Timer(CLEAR_AFTER_S, _logged, (_clear_sync(signal), self.what))
            timer.daemon = True
            timer.start()

    def __repr__(self) -> str:
        return f"<OffloadedJob {self.what} session={self.session_id[:8]}... cancelled={self.cancelled}>"


def _clear_sync(signal: Cancellation) -> Callable[[], None]:
    def clear() -> None:
        if isinstance(signal, DaskCancellation):
            signal.clear()
    return clear


async def _cancel_async(client: Any, future: Any, signal: Cancellation) -> None:
    assert isinstance(signal, DaskCancellation)
    event = dask_event(signal.name, client)
    try:
        await event.set()
        await client.cancel([future])
        await asyncio.sleep(CLEAR_AFTER_S)
        await event.clear()
    except Exception:
        log.exception("cancelling offloaded work on Dask failed (event %s)", signal.name)


def _logged(fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except Exception:
        log.exception("cancelling %s failed", what)


def offload(session: Session, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            schedule: Any) -> asyncio.Future[Any]:
    """Run ``fn(*args, **kwargs)`` on ``schedule``; see the module docstring."""
    if not callable(fn):
        raise TypeError(f"execute(): the function to offload must be callable; got {fn!r}")
    if schedule == "dask":
        from .._config import config

        if not config.process_value("dask_scheduler"):
            dask_client()   # raises the ConfigError that says how to set the scheduler
    session.scheduler.check_alive()
    loop = session.event_loop()
    if loop is None:
        raise NoEventLoopError("execute(fn, schedule=...) returns a future on the session's event loop, and there "
                               "is none: call it from a served app, a notebook kernel or a coroutine")
    if schedule == "dask":
        job = OffloadedJob(session, loop, fn, "dask")
        session.scheduler.own(job)

        def connect_and_submit() -> None:
            try:
                job.submit_to_dask(dask_client(), fn, args, kwargs)
            except Exception as exc:
                job.settle(True, None, exc)

        thread_pool.get().submit(connect_and_submit)
    elif isinstance(schedule, concurrent.futures.Executor):
        job = OffloadedJob(session, loop, fn, type(schedule).__name__)
        session.scheduler.own(job)
        job.submit_to_executor(schedule, fn, args, kwargs)
    elif _is_dask_client(schedule):
        job = OffloadedJob(session, loop, fn, "dask")
        session.scheduler.own(job)
        job.submit_to_dask(schedule, fn, args, kwargs)
    else:
        raise TypeError(f"execute(): schedule must be 'auto', True, 'thread', 'dask', a distributed.Client or a "
                        f"concurrent.futures.Executor; got {schedule!r}")
    return job.result
