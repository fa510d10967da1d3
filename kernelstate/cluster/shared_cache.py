"""``ks.state.as_cached(key, fn, shared=True)``: one computation across every process.

With a shared store the value is looked up in the store first; on a miss one
process takes the key's lock, computes and writes the value (signed, with the
``ttl``, or a day without one) and the processes waiting on the lock read it.
Only JSON values and bytes can be shared, at most
``ks.config.shared_value_max_bytes`` (1 MiB by default); a value whose signature
does not match (another key, or modified in the store) is refused, logged and
computed again. The key and keyword arguments must be JSON values too, so
every process names the entry the same way.

Without a shared store (one process) this is the process cache's ``as_cached``.
If the store is unreachable the value is computed in this process (one log
line for the outage).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Hashable
from typing import Any

from .coordinator import coordinator
from .errors import NotShareableError, TamperedValueError
from .signing import Codec

__all__ = ["MISSING", "shared_value", "cache_name", "decoded", "max_value_bytes"]

log = logging.getLogger("kernelstate.cluster")
MISSING = object()   # a shared value not in the store, or refused


def shared_value(key: Hashable, compute: Callable[[], Any], ttl: float | None) -> Any:
    """The value of ``key`` shared by every process, computed by ``compute`` in one of them."""
    if ttl is not None and ttl <= 0:
        raise ValueError(f"as_cached(shared=True): ttl must be a positive number of seconds or None; got {ttl!r}")
    return coordinator().cached(key, compute, ttl)


def cache_name(key: Any) -> str:
    """The store's name of a shared cache key (which must be JSON: strings, numbers, lists/tuples of them)."""
    try:
        text = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise NotShareableError(
            f"as_cached(shared=True): the key {key!r} (with its keyword arguments) must be made of JSON values "
            "(str, int, float, bool, None, tuples/lists of them) so every process names it the same way"
        ) from None
    return "ks:cache:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def max_value_bytes() -> int:
    """The bound of a value shared through the store (``ks.config.shared_value_max_bytes``)."""
    from .._config import config

    return int(config.process_value("shared_value_max_bytes"))


def decoded(codec: Codec, name: str, purpose: str, blob: bytes | None) -> Any:
    """The shared value ``name`` read from a store as ``blob``: MISSING if absent, or refused (logged) when its
    signature does not match, so it is computed again."""
    if blob is None:
        return MISSING
    try:
        return codec.loads(purpose, blob)
    except TamperedValueError as exc:
        log.error("shared cache value %s was refused and is computed again: %s", name, exc)
        return MISSING
