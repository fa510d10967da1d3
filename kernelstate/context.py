"""The current session, as one ContextVar (a leaf: this module builds nothing).

Invariant: code that enters user code (an app script, a model callback, a
periodic tick, a scheduled task, onload, protocol dispatch) wraps it in
``activate(session)``. Asyncio tasks inherit a copy of the context; threads do
not, so the scheduler runs thread work under ``contextvars.copy_context()``.

Outside any activated session nothing is set here; :func:`kernelstate.session.current_session`
then answers with the process-wide kernel session, so ``ks.state`` never has to
branch on "is there a session".
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session

_current: contextvars.ContextVar[Session] = contextvars.ContextVar("kernelstate.session")


def served_session_or_none() -> Session | None:
    """Return the activated session, or None outside one."""
    return _current.get(None)


@contextmanager
def activate(session: Session) -> Iterator[Session]:
    """Make ``session`` current for the duration of the block."""
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)
