"""The current session, as one ContextVar.

Invariant: code that enters user code (an app script, a model callback, a
periodic tick, a scheduled task, onload, protocol dispatch) wraps it in
``activate(session)``. Asyncio tasks inherit a copy of the context; threads do
not, so the scheduler runs thread work under ``contextvars.copy_context()``.

Outside any activated session, the process-wide :class:`KernelSession` is
current, so ``ks.state`` never has to branch on "is there a session".
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session

_current: contextvars.ContextVar[Session] = contextvars.ContextVar("kernelstate.session")
_kernel_session: list[Session] = []


def kernel_session() -> Session:
    """Return the process-wide session used outside any served session.

    In a notebook kernel (or a plain script) this is the session whose
    periodic callbacks run on the kernel's event loop.
    """
    if not _kernel_session:
        from .session import KernelSession

        _kernel_session.append(KernelSession())
    return _kernel_session[0]


def current_session() -> Session:
    """Return the active session, or the process-wide kernel session."""
    session = _current.get(None)
    if session is None:
        return kernel_session()
    return session


def served_session_or_none() -> Session | None:
    """Return the active *served* session, or None outside one."""
    return _current.get(None)


@contextmanager
def activate(session: Session) -> Iterator[Session]:
    """Make ``session`` current for the duration of the block."""
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)
