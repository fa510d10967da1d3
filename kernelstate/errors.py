"""Every public kernelstate exception.

Each subclass also inherits the builtin a caller would naturally catch, so
``except LookupError`` still works for an unknown session.
"""
from __future__ import annotations


class KernelstateError(Exception):
    """Base class of every error kernelstate raises on purpose."""


class SessionDestroyedError(KernelstateError, RuntimeError):
    """Raised when work is scheduled on a session that was destroyed."""


class ConfigError(KernelstateError, ValueError):
    """Raised for an unknown or invalid configuration option."""


class AppLoadError(KernelstateError):
    """Raised when an app (script, notebook, object) cannot be loaded or run.

    Attributes:
        path: the app path or name that failed.
        cause: the exception the app raised, if any.
    """

    def __init__(self, message: str, path: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.cause = cause


class ProtocolError(KernelstateError, ValueError):
    """A malformed or forbidden Bokeh protocol message (from a client, or, in
    :mod:`kernelstate.testing`, a server reply a browser would refuse)."""


class NoEventLoopError(KernelstateError, RuntimeError):
    """Raised when scheduling needs a running event loop and there is none."""
