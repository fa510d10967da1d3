"""The SQLite file through which this machine's processes coordinate (:mod:`~kernelstate.cluster.machine`).

- :func:`database_path` / :func:`default_url`: ``sqlite:///ABSOLUTE/PATH``, and the
  file ``--num-procs`` uses when given no store (one per listening address, in
  the runtime folder, :mod:`kernelstate._paths`);
- :class:`CoordinationFile`: one connection per process, each statement its own
  transaction, in WAL mode (readers never wait for the writer); reopened after a
  fork, after a failure, and when the file was deleted or replaced;
- :func:`key_beside`: the signing key kept in an owner-only ``<file>.key`` when
  ``KERNELSTATE_SECRET_KEY`` is not set;
- :class:`FileHealth`: one log line when the file cannot be used, one when it can again.

The file and its folder are created owner-only. Thread-safe.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._paths import runtime_dir as default_runtime_dir
from ..errors import ConfigError
from .coordinator import ENV_SECRET
from .errors import StoreURLError

__all__ = ["SCHEME", "CoordinationFile", "FileHealth", "database_path", "default_url", "key_beside"]

log = logging.getLogger("kernelstate.cluster")
SCHEME = "sqlite"
BUSY_TIMEOUT_S = 2.0      # how long a statement waits for another process's write lock
REOPEN_CHECK_S = 1.0      # how often the file is checked for having been replaced or deleted

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ks_claims (name TEXT NOT NULL, fire_ms INTEGER NOT NULL, owner TEXT NOT NULL,
                                      expires REAL NOT NULL, PRIMARY KEY (name, fire_ms));
CREATE TABLE IF NOT EXISTS ks_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
                                        value BLOB NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ks_cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ks_locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
"""


def default_url(listen: int | str, runtime_dir: Path | None = None) -> str:
    """The URL the ``--num-procs`` supervisor uses when given no store: one file per port (or Unix socket).

    One file per listening address keeps two servers on one machine from
    claiming each other's tasks or receiving each other's messages.
    """
    if runtime_dir is None:
        runtime_dir = default_runtime_dir()
    tag = str(listen) if isinstance(listen, int) else _hash(str(listen))
    return f"{SCHEME}://{Path(runtime_dir).resolve() / f'cluster-{tag}.sqlite'}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def database_path(url: str) -> Path:
    """The file of ``sqlite:///PATH`` (``sqlite:////PATH`` too: the path is always absolute)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or parts.netloc or not parts.path.strip("/"):
        raise StoreURLError(f"a machine-local store URL is sqlite:///ABSOLUTE/PATH/FILE.sqlite; got {url!r}")
    return Path("/" + parts.path.lstrip("/"))


def key_beside(path: Path) -> str:
    """The signing key kept in an owner-only file beside the database (made by the first process)."""
    key_path = path.with_suffix(".key")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            for _ in range(20):   # another process made it an instant ago: let it finish writing
                key = key_path.read_text(encoding="ascii").strip()
                if key:
                    return key
                time.sleep(0.05)
            raise ConfigError(f"the signing key file {key_path} is empty; delete it and start again") from None
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48))
        return key_path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot keep the shared signing key in {key_path} ({exc}); set {ENV_SECRET} in every "
                          "process, or choose a writable folder for the sqlite:/// store") from None


class FileHealth:
    """One log line when the database cannot be used, one when it can again."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.down = False
        self.writes_failed = False
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException, *, write: bool = True) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
            self.writes_failed = write
        log.error("the machine-local coordination database %s cannot be used (%s while %s: %s); until it can, "
                  "named tasks run in every process, published messages reach this process only and shared "
                  "cached values are computed here; retrying. If the file is damaged, stop the server and delete it "
                  "with its -wal and -shm files", self.label, type(exc).__name__, what, exc)

    def ok(self, *, write: bool = True) -> None:
        """A statement succeeded; a read only ends an outage that reads had (a locked file still lets readers in)."""
        if not self.down:
            return
        with self._lock:
            if not self.down or (self.writes_failed and not write):
                return
            self.down = False
        log.warning("the machine-local coordination database %s can be used again: tasks, publish and the shared "
                    "cache are coordinated across this machine's processes again", self.label)


class CoordinationFile:
    """One connection per process, statements serialized; reopened after a fork, a failure, or a replaced file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self.inode = 0
        self._checked = 0.0

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[Any], int]:
        """Run one statement (its own transaction); returns its rows and its row count."""
        if self._lock_pid != os.getpid():   # forked while another thread held it: the child's copy stays held
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        with self._lock:
            conn = self._connection()
            try:
                cursor = conn.execute(sql, params)
                return cursor.fetchall(), cursor.rowcount
            except sqlite3.Error:
                self._drop()
                raise

    def _connection(self) -> sqlite3.Connection:
        now = time.monotonic()
        if self._conn is not None and self._pid == os.getpid() and now - self._checked < REOPEN_CHECK_S:
            return self._conn
        self._checked = now
        if self._conn is not None and self._pid == os.getpid():
            try:
                if os.stat(self.path).st_ino == self.inode:
                    return self._conn
            except FileNotFoundError:
                pass
            self._drop()   # deleted or replaced: the other processes open the new file, so must we
        self._conn = None  # after a fork: never use (or close) the parent's connection
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        self._conn, self._pid, self.inode = conn, os.getpid(), os.stat(self.path).st_ino
        return conn

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
