"""``ks.cancellation()``: the signal an offloaded function checks to stop early.

Dask cannot stop a task that is already running, and neither can a
``concurrent.futures`` executor. So work offloaded with
``ks.state.execute(fn, *args, schedule=client_or_executor)`` runs with a
*cancellation signal* current, which the function reads::

    def long_sum(n):
        signal = ks.cancellation()
        total = 0
        for i in range(n):
            if i % 10_000 == 0:
                signal.raise_if_cancelled()   # or: if signal.cancelled: return None
            total += i
        return total

The signal is set when the session that offloaded the work is destroyed.

- On Dask it is a ``distributed.Event`` named ``kernelstate-cancel-<job>``
  (one per offloaded call); checking it asks the scheduler, at most once per
  ``CHECK_INTERVAL_S`` (answers in between are the last one), so a check in a
  loop stays cheap and a set signal is seen within that interval plus a round trip.
- On a ``ThreadPoolExecutor`` (same process) it is a ``threading.Event``.
- On other executors (a ``ProcessPoolExecutor``) and outside offloaded work
  the signal is never set.

A function that does not check it runs to its end; its result is dropped.
"""
from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import KernelstateError

__all__ = ["Cancellation", "ThreadCancellation", "DaskCancellation", "OffloadCancelledError", "cancellation", "run_with", "dask_event"]

CHECK_INTERVAL_S = 0.1


class OffloadCancelledError(KernelstateError):
    """Raised by ``ks.cancellation().raise_if_cancelled()`` once the work's session is gone."""


class Cancellation:
    """A signal that is never set (the base of the others)."""

    @property
    def cancelled(self) -> bool:
        """True once the session that offloaded this work was destroyed."""
        return False

    def raise_if_cancelled(self) -> None:
        """Raise :class:`OffloadCancelledError` if the work was cancelled."""
        if self.cancelled:
            raise OffloadCancelledError("the session that offloaded this work was destroyed; its result would be dropped")

    def set(self) -> None:
        """Cancel: the function sees ``cancelled`` become True."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} cancelled={self.cancelled}>"


class ThreadCancellation(Cancellation):
    """The signal of work on a thread of this process."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()


class DaskCancellation(Cancellation):
    """The signal of work on Dask: a ``distributed.Event`` known by name (only the name is pickled)."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self.client = client  # the driver's client (for set()); a worker uses its own
        self._checked = 0.0
        self._seen = False

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])  # type: ignore[misc]

    @property
    def cancelled(self) -> bool:
        if self._seen:
            return True
        now = time.monotonic()
        if now - self._checked >= CHECK_INTERVAL_S:
            self._checked = now
            self._seen = bool(dask_event(self.name).is_set())
        return self._seen

    def set(self) -> None:
        dask_event(self.name, self.client).set()

    def clear(self) -> None:
        """Forget the event on the scheduler (once nothing will check it again)."""
        dask_event(self.name, self.client).clear()


def dask_event(name: str, client: Any = None) -> Any:
    """The ``distributed.Event`` called ``name`` (on the worker's own client when ``client`` is None)."""
    from distributed import Event

    make: Any = Event   # distributed is untyped
    return make(name, client=client)


_current: contextvars.ContextVar[Cancellation] = contextvars.ContextVar("kernelstate.cancellation")
_NEVER = Cancellation()


def cancellation() -> Cancellation:
    """The cancellation signal of the offloaded work running here (a never-set one elsewhere)."""
    return _current.get(_NEVER)


def run_with(signal: Cancellation, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``fn(*args, **kwargs)`` with ``signal`` current (this is what the executor or Dask worker runs)."""
    token = _current.set(signal)
    try:
        signal.raise_if_cancelled()
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)
