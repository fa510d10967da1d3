"""The errors of cross-process work (each a :class:`~kernelstate.errors.KernelstateError`)."""
from __future__ import annotations

from ..errors import ConfigError, KernelstateError

__all__ = ["StoreURLError", "TamperedValueError", "ValueTooLargeError", "NotShareableError"]


class StoreURLError(ConfigError):
    """A ``--session-store`` URL this module cannot use (its scheme, its form, a password on the command line)."""


class TamperedValueError(KernelstateError, ValueError):
    """A value read from the shared store whose signature does not match: it was refused."""


class ValueTooLargeError(KernelstateError, ValueError):
    """A value too large to share through the store (the bound is ``ks.config.shared_value_max_bytes``)."""


class NotShareableError(KernelstateError, TypeError):
    """A value (or cache key) that cannot cross processes: only JSON values and bytes can."""
