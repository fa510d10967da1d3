"""The Coordinator: how this process reaches the others, chosen once per process from a URL.

A :class:`Coordinator` answers four questions the rest of kernelstate asks:

- ``claim(name, fire_time)``: should this process run this occurrence of a
  named task? (:mod:`kernelstate.tasks`)
- ``publish(topic, value)``: deliver a message to every subscriber, in every
  process (:mod:`kernelstate.cluster.topics`);
- ``cached(key, compute, ttl)``: the value of a shared cache key, computed
  once across processes (:mod:`kernelstate.cluster.shared_cache`);
- ``shared``: whether there are other processes at all (period tasks align
  their fire times to a grid only then).

:class:`LocalCoordinator` is the default: one process, every claim granted,
messages delivered in-process, values computed locally. That is exactly
today's single-process behaviour. :func:`configure` replaces it for the process
(the server does this at start-up from ``--session-store``).

URLs: ``redis://[:password@]host:port/db`` (or ``rediss://``), across machines.
A password is accepted only through the ``KERNELSTATE_SESSION_STORE``
environment variable, never on the command line (where ``ps`` shows it to every
user). ``sqlite:///ABSOLUTE/PATH``: the processes of this machine, through that
SQLite file (:mod:`~kernelstate.cluster.machine`). ``local``, an empty value, or
another store's URL (which the session store module owns) mean the local
default: nothing is shared.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import StoreURLError

__all__ = ["Coordinator", "LocalCoordinator", "configure", "coordinator", "ENV_URL", "ENV_SECRET", "check_url", "redacted", "configure_from_options", "check_store"]

log = logging.getLogger("kernelstate.cluster")
ENV_URL = "KERNELSTATE_SESSION_STORE"
ENV_SECRET = "KERNELSTATE_SECRET_KEY"
_SCHEMES = ("redis", "rediss")


class Coordinator:
    """The interface, and the single-process behaviour every method falls back to."""

    url = "local"
    label = "local"
    shared = False

    def claim(self, name: str, fire_time: dt.datetime, expiry_s: float) -> bool:
        """Whether this process runs the occurrence of task ``name`` due at ``fire_time``."""
        return True

    def publish(self, topic: str, value: Any) -> None:
        """Deliver ``value`` to the subscribers of ``topic``."""
        from .topics import deliver

        deliver(topic, value)

    def listen(self) -> None:
        """Make sure messages published by other processes reach this one (called on the first subscribe)."""

    def cached(self, key: Any, compute: Callable[[], Any], ttl: float | None) -> Any:
        """The shared value of ``key``; the local coordinator just computes it (the process cache memoizes it)."""
        return compute()

    def close(self) -> None:
        """Release connections and threads (the coordinator is being replaced, or the process ends)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class LocalCoordinator(Coordinator):
    """One process: every claim is granted, messages stay in the process."""


_lock = threading.Lock()
_current: list[Coordinator] = [LocalCoordinator()]


def coordinator() -> Coordinator:
    """The process's coordinator (the local one until :func:`configure` is called with a URL)."""
    return _current[0]


def check_url(url: str, *, from_argv: bool = False) -> str:
    """Validate a store URL; a password is refused when it came from the command line."""
    url = url.strip()
    if url in ("", "local"):
        return "local"
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from .sqlite_file import database_path

        database_path(url)   # this machine's processes coordinate through the file
        return url
    if parts.scheme not in _SCHEMES:
        return url  # another store's URL (the session store module's): nothing to coordinate through it
    if not parts.hostname:
        raise StoreURLError(f"session store URL has no host: {redacted(url)!r}; write redis://host:port/db")
    if from_argv and parts.password:
        raise StoreURLError(
            "a password in --session-store would be visible to every user of this machine (ps); "
            f"put the whole URL in the {ENV_URL} environment variable instead of the command line"
        )
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StoreURLError(f"session store URL's database must be a number, as in redis://host:6379/0; got {db!r}")
    return url


def configure(url: str | None, secret: str | None = None) -> Coordinator:
    """Use the store at ``url`` for this process (``None``: ``KERNELSTATE_SESSION_STORE``, else local).

    ``secret`` signs shared values (default: ``KERNELSTATE_SECRET_KEY``); every
    process must have the same one. Configuring the URL already in use does
    nothing. Raises :class:`StoreURLError` for a URL it cannot use, and
    ``ConfigError`` for a shared store without a secret key.
    """
    url = check_url(url if url is not None else os.environ.get(ENV_URL, ""))
    with _lock:
        old = _current[0]
        if old.url == url:
            return old
        if urlsplit(url).scheme == "sqlite":
            from .machine import MachineCoordinator

            new: Coordinator = MachineCoordinator(url, secret)
        elif urlsplit(url).scheme not in _SCHEMES:
            new = LocalCoordinator()
            new.url = url
        else:
            from .redis_coordinator import RedisCoordinator

            new = RedisCoordinator(url, secret or os.environ.get(ENV_SECRET) or None)
        _current[0] = new
    old.close()
    from .topics import subscriber_count

    if subscriber_count():   # subscribed before this store was configured: they must hear the other processes now
        new.listen()
    if new.shared:
        log.info("named tasks, publish/subscribe and as_cached(shared=True) are coordinated through %s", new.label)
    elif url != "local":
        log.info("the session store %s is local to this machine: named tasks, publish/subscribe and "
                 "as_cached(shared=True) are per process", redacted(url))
    return new


def check_store(url: str | None, secret: str | None) -> None:
    """Raise ``ConfigError`` now for a shared store (``url``, else the environment's) that has no secret to sign with."""
    from ..errors import ConfigError

    url = check_url(url if url is not None else os.environ.get(ENV_URL, ""))
    if urlsplit(url).scheme in _SCHEMES and not (secret or os.environ.get(ENV_SECRET)):
        raise ConfigError(
            f"the shared session store {redacted(url)} needs KERNELSTATE_SECRET_KEY: the same secret in every "
            "process signs shared values (cache, messages) so no process trusts what it did not sign"
        )


def configure_from_options(url: str | None, secret: str | None) -> Coordinator:
    """What a server does at start-up: its ``--session-store``, else ``KERNELSTATE_SESSION_STORE``, else no change.

    A URL given as an option is also recorded as ``ks.config.session_store``
    (never the environment's, which may hold a password).
    """
    if url is None and not os.environ.get(ENV_URL):
        return coordinator()
    used = configure(url, secret)
    if url is not None:
        from .._config import config

        config.set("session_store", url, process=True)
    return used


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


