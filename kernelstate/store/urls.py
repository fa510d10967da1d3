"""``--session-store URL``: which engine, where, and the signing key a restarted process must reuse.

- ``local``: the machine-local SQLite file ``sessions.sqlite`` in the user's runtime folder
  (``$KERNELSTATE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/kernelstate``, else a folder in the
  temp dir), so a restarted server, or the workers of ``--num-procs``, find it again;
- ``sqlite:///ABSOLUTE/PATH``: that SQLite file;
- ``redis://[:PASSWORD@]HOST:PORT/DB``: a Redis server. A password is taken only from
  the environment (``KERNELSTATE_SESSION_STORE``), never from the command line, where
  any local user can read it in the process list.

Without ``KERNELSTATE_SECRET_KEY``, a process with a store keeps its key in an
owner-only file beside the store (``<file>.key``; for Redis, in the runtime
folder), so a restarted process signs tokens and records as before.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from .base import SessionStore
from .sqlite import SQLiteStore, runtime_dir

__all__ = ["ENV_VAR", "check_store_url", "open_store", "redacted", "store_key_path", "store_secret"]

log = logging.getLogger(__name__)
ENV_VAR = "KERNELSTATE_SESSION_STORE"


def redacted(url: str) -> str:
    """``url`` without its password (for log lines and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def check_store_url(url: str, from_argv: bool = False) -> str:
    """Return ``url`` if it names a store engine; raise ConfigError naming what is wrong otherwise."""
    if url == "local":
        return url
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if not parts.path:
            raise ConfigError(f"session store {redacted(url)!r} names no file; use sqlite:///PATH/TO/FILE.sqlite")
        return url
    if parts.scheme in ("redis", "rediss"):
        if from_argv and parts.password is not None:
            raise ConfigError("--session-store must not carry a password (the process list shows it to every "
                              f"local user); put the URL in the environment variable {ENV_VAR} instead")
        if not parts.hostname:
            raise ConfigError(f"session store {redacted(url)!r} names no host; use redis://HOST:PORT/DB")
        return url
    raise ConfigError(f"unknown session store {redacted(url)!r}; use local, sqlite:///PATH or redis://HOST:PORT/DB")


def _local_path() -> Path:
    return runtime_dir() / "sessions.sqlite"


def _sqlite_path(url: str) -> Path:
    """The absolute file of ``sqlite:///PATH`` (``sqlite:////PATH`` too)."""
    return Path("/" + urlsplit(url).path.lstrip("/"))


def open_store(url: str) -> SessionStore:
    """Open the store ``url`` names."""
    check_store_url(url)
    if url == "local":
        return SQLiteStore(_local_path())
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return SQLiteStore(_sqlite_path(url))
    from .redis_store import RedisStore

    return RedisStore(url)


def store_key_path(url: str) -> Path:
    """Where a store's signing key is kept when ``KERNELSTATE_SECRET_KEY`` is not set."""
    if url == "local":
        return _local_path().with_suffix(".key")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite_path(url).with_suffix(".key")
    name = hashlib.sha256(f"{parts.hostname}:{parts.port}{parts.path}".encode()).hexdigest()[:16]
    return runtime_dir() / f"redis-{name}.key"


def store_secret(url: str) -> str:
    """The signing key kept beside the store (created owner-only on first use)."""
    path = store_key_path(url)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another worker made it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key)
    if urlsplit(url).scheme.startswith("redis"):
        log.warning("session store %s: no KERNELSTATE_SECRET_KEY, so the signing key is kept in %s; processes "
                    "on other machines must share one key: set KERNELSTATE_SECRET_KEY on all of them", redacted(url), path)
    return key
