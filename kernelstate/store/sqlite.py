"""The machine-local session store: one SQLite file, shared by every process on the machine.

SQLite in WAL mode lets several processes (``--num-procs``, a restarted
server) read and write the same file safely; each call opens no transaction
longer than one statement. Expired rows are invisible at once and deleted in
batches. The file and its folder are created owner-only.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .base import StoreUnavailableError

__all__ = ["SQLiteStore", "runtime_dir"]

PURGE_EVERY_S = 60.0


def runtime_dir() -> Path:
    """kernelstate's per-user runtime folder (``$KERNELSTATE_RUNTIME_DIR``, else under ``$XDG_RUNTIME_DIR``
    or the temp folder), created owner-only."""
    explicit = os.environ.get("KERNELSTATE_RUNTIME_DIR")
    if explicit:
        path = Path(explicit)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "kernelstate"
    else:
        path = Path(tempfile.gettempdir()) / f"kernelstate-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class SQLiteStore:
    """Records in the table ``records(key, value, expires)`` of one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"sqlite://{self.path}"
        self._lock = threading.Lock()
        self._last_purge = 0.0
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS records "
                             "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(f"cannot open the session store {self.path}: {exc}; check that its "
                                        "folder is writable, or pass another with --session-store sqlite:///PATH") from exc

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"session store {self.path}: {type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        rows = self._run("SELECT value FROM records WHERE key = ? AND expires > ?", (key, time.time()))
        return bytes(rows[0][0]) if rows else None  # type: ignore[call-overload]  # a BLOB column

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        now = time.time()
        self._run("INSERT OR REPLACE INTO records (key, value, expires) VALUES (?, ?, ?)", (key, value, now + ttl_s))
        if now - self._last_purge > PURGE_EVERY_S:
            self._last_purge = now
            self._run("DELETE FROM records WHERE expires <= ?", (now,))

    def delete(self, key: str) -> None:
        self._run("DELETE FROM records WHERE key = ?", (key,))

    def touch(self, keys: Iterable[str], ttl_s: float) -> set[str]:
        now = time.time()
        missing = set()
        try:
            with self._lock:
                self._db.execute("BEGIN")
                try:
                    for key in keys:
                        cursor = self._db.execute("UPDATE records SET expires = ? WHERE key = ? AND expires > ?",
                                                  (now + ttl_s, key, now))
                        if cursor.rowcount == 0:
                            missing.add(key)
                finally:
                    self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"session store {self.path}: {type(exc).__name__}: {exc}") from exc
        return missing

    def close(self) -> None:
        with self._lock:
            self._db.close()
