"""Callback failures: logged with the session id, then handed to ``ks.config.exception_handler``.

Every place that runs user code on the runtime's behalf (periodic callbacks,
``execute``, ``onload``, watchers and ``on_click`` run by a browser change,
coroutine callbacks, thread work, named tasks, created hooks) reports an
exception through :func:`callback_failed`. It is logged first (the first
failure of a callback in full, then at most one line a second), then the
exception handler runs: with the failing session current and that session's
value of ``exception_handler`` (its own override, else the process value), or,
for work outside any session (named tasks), the process value. An exception
raised by the handler itself is logged and goes no further.
"""
from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING

from .context import activate

if TYPE_CHECKING:
    from .session import Session

app_log = logging.getLogger("kernelstate.application")


class RateLimitedLog:
    """Logs a callback's failures: first in full, then at most one line a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._suppressed = 0
        self._count = 0

    def failed(self, what: str, session_id: str, exc: BaseException | None = None) -> None:
        """Log one failure; ``exc`` defaults to the exception being handled."""
        exc_info: BaseException | bool = exc if exc is not None else True
        self._count += 1
        now = time.monotonic()
        if self._count == 1:
            app_log.error("%s failed (session=%s)", what, session_id, exc_info=exc_info)
            self._last = now
        elif now - self._last >= 1.0:
            app_log.error(
                "%s failed again (session=%s; %d failures in all, %d not logged): %r",
                what, session_id, self._count, self._suppressed, exc,
            )
            self._last = now
            self._suppressed = 0
        else:
            self._suppressed += 1


def callback_failed(what: str, session: Session | None, exc: BaseException,
                    errors: RateLimitedLog | None = None) -> None:
    """Log ``exc`` (raised by ``what``), then run the exception handler for ``session``."""
    session_id = session.id if session is not None else "-"
    (errors or RateLimitedLog()).failed(what, session_id, exc)
    run_exception_handler(exc, session)


def run_exception_handler(exc: BaseException, session: Session | None) -> None:
    """Call ``ks.config.exception_handler(exc)`` in ``session``'s context (process value outside one)."""
    from ._config import config

    if session is None:
        handler = config.process_value("exception_handler")
        if handler is not None:
            _call(handler, exc, "-")
        return
    with activate(session):
        handler = config.exception_handler
        if handler is not None:
            _call(handler, exc, session.id)


def _call(handler: object, exc: BaseException, session_id: str) -> None:
    try:
        result = handler(exc)  # type: ignore[operator]
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise TypeError(
                f"exception_handler {handler!r} returned an awaitable; it must be a plain function "
                "(start async work from it with ks.state.execute)"
            )
    except Exception:
        app_log.exception("exception_handler %r failed while handling %s: %s (session=%s)",
                          handler, type(exc).__name__, exc, session_id)
