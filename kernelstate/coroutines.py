"""Coroutine watchers: ``async def`` callbacks given to ``.param.watch``, ``on_click`` or ``param.depends(watch=True)``.

Param hands a coroutine callback to ``param.parameterized.async_executor``.
:func:`install` (called explicitly when a host starts: ``Server.start`` and
the kernel's comm target registration, never on import) sets it to
:func:`run_coroutine_callback`, which runs the coroutine through the current
session's scheduler: with that session current, counted in ``ks.state.busy``,
failures logged with the session id and handed to
``ks.config.exception_handler``, and cancelled when the session is
destroyed. Where there is no event loop at all (a plain script), param's own
executor runs it, as before installation.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import param

from .scheduling import callback_name
from .session import current_session

_previous: list[Callable[[Callable[[], Awaitable[Any]]], Any]] = []
_lock = threading.Lock()


def run_coroutine_callback(func: Callable[[], Awaitable[Any]]) -> None:
    """Run the coroutine ``func()`` as a task of the current session."""
    session = current_session()
    target = func.func if isinstance(func, functools.partial) else func
    what = f"coroutine callback {callback_name(target)}"
    if session.scheduler.loop() is None and _previous:
        _previous[0](func)
        return
    session.scheduler.run_coroutine(func, what)


def install() -> None:
    """Make param run coroutine callbacks through kernelstate's session schedulers (idempotent)."""
    with _lock:
        current = getattr(param.parameterized, "async_executor", None)
        if current is run_coroutine_callback:
            return
        _previous[:] = [current] if current is not None else []
        setattr(param.parameterized, "async_executor", run_coroutine_callback)  # noqa: B010 (not re-exported by param)


def installed() -> bool:
    return getattr(param.parameterized, "async_executor", None) is run_coroutine_callback
