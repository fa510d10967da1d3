"""MachineCoordinator: several processes on ONE machine coordinated through one SQLite file, no server.

For ``kernelstate serve --num-procs N`` (or several ``kernelstate serve`` on one
machine) without Redis: ``--session-store sqlite:///PATH`` (absolute path; the
same file may hold the session store's records, in other tables). The
``--num-procs`` supervisor picks :func:`default_url` when it is given no store.

- **Tasks**: each occurrence of a named task is claimed with ``INSERT OR IGNORE``
  of the row (name, fire time); the process whose insert adds the row runs it.
  No process holds the task: when one dies, the others keep claiming. Rows
  older than their expiry are deleted in batches.
- **Publish/subscribe**: a message is a row appended to ``ks_messages``
  (``AUTOINCREMENT`` id: ids are never reused and, SQLite having one writer at a
  time, become visible in order). Each process that has subscribers polls for
  rows past the last id it saw every ``POLL_S`` (50 ms) on one daemon thread and
  hands them to its subscribers, this process's own messages included, exactly
  as the Redis listener does. Rows are deleted ``RETAIN_S`` after publication.
- **Shared cache**: the signed value lives in ``ks_cache``; a missing value is
  computed by the process that inserts the key's row into ``ks_locks``, while
  the others poll for the value. A lock whose owner process is gone (this is one
  machine: its pid can be checked) or older than ``LOCK_S`` is taken over.

The file itself (opening, schema, the key file, the outage log lines) is
:mod:`~kernelstate.cluster.sqlite_file`. Values are signed exactly as with
Redis (:mod:`~kernelstate.cluster.signing`) with ``KERNELSTATE_SECRET_KEY``, or
without it with a key kept in an owner-only file beside the database
(``<file>.key``), so every process of the machine signs alike. The file and its
folder are created owner-only.

Limits, honestly: one machine only (SQLite over a network file system is not
safe; use Redis across machines); a message reaches the other processes within
``POLL_S`` plus the time to write a row (a few ms); a process stalled longer
than ``RETAIN_S`` (or ``MAX_MESSAGES`` messages) misses what was published
meanwhile; every write takes the file's one SQLite write lock (fine for tasks,
messages and cache fills, not for thousands of publishes per second). A damaged
or locked file degrades like a Redis outage: one log line, tasks run in every
process, messages stay in their process, cached values are computed locally,
until the file can be used again. A deleted file is made again and every
process moves to it within ``REOPEN_CHECK_S``.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .coordinator import ENV_SECRET, Coordinator
from .errors import TamperedValueError
from .shared_cache import MISSING, cache_name, decoded, max_value_bytes
from .signing import Codec
from .sqlite_file import (
    BUSY_TIMEOUT_S,
    REOPEN_CHECK_S,
    CoordinationFile,
    FileHealth,
    database_path,
    default_url,
    key_beside,
)
from .topics import deliver

__all__ = ["MachineCoordinator", "database_path", "default_url"]

log = logging.getLogger("kernelstate.cluster")
POLL_S = 0.05             # how often a process with subscribers looks for new messages
RETAIN_S = 30.0           # how long a message row is kept after publication
MAX_MESSAGES = 10_000     # and at most this many rows are kept (a burst of publishes cannot fill the disk)
LOCK_S = 120.0            # a shared computation holding the lock longer lets a second process start it
PRUNE_EVERY_S = 5.0
DEFAULT_CACHE_TTL_S = 86400.0
_BATCH = 500


class MachineCoordinator(Coordinator):
    """Coordination of this machine's processes through the SQLite file of ``url``; see the module docstring."""

    shared = True

    def __init__(self, url: str, secret: str | None) -> None:
        path = database_path(url)
        self.url = url
        self.label = f"{url} (this machine only)"
        self.db = CoordinationFile(path)
        self.codec = Codec((secret or os.environ.get(ENV_SECRET) or key_beside(path)).encode("utf-8"))
        self._last_id: int | None = None
        self._pruned: dict[str, float] = {}
        self._poller: threading.Thread | None = None
        self._start_threads()

    def _start_threads(self) -> None:
        """This process's sender and (if it listens) poller; again in a child forked after they started."""
        listening = self._poller is not None
        self._pid = os.getpid()
        self.me = f"{socket.gethostname()}:{self._pid}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.health = FileHealth(str(self.db.path))
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="kernelstate-machine-publish")
        self._poller = None
        if listening:   # from the parent's last message on
            self._start_poller()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():   # a forked child has none of its parent's threads
            self._start_threads()

    def _start_poller(self) -> None:
        self._poller = threading.Thread(target=self._poll, name="kernelstate-machine-poll", daemon=True)
        self._poller.start()

    def _prune(self, table: str, sql: str, now: float) -> None:
        """Delete old rows of ``table`` at most every PRUNE_EVERY_S (whichever process gets there)."""
        if now - self._pruned.get(table, 0.0) >= PRUNE_EVERY_S:
            self._pruned[table] = now
            self.db.run(sql, (now,))

    # -- tasks ------------------------------------------------------------------------
    def claim(self, name: str, fire_time: dt.datetime, expiry_s: float) -> bool:
        self._check_fork()
        now = time.time()
        try:
            _, added = self.db.run("INSERT OR IGNORE INTO ks_claims (name, fire_ms, owner, expires) VALUES (?, ?, ?, ?)",
                                   (name, round(fire_time.timestamp() * 1000), self.me, now + expiry_s))
            self._prune("ks_claims", "DELETE FROM ks_claims WHERE expires <= ?", now)
        except (sqlite3.Error, OSError) as exc:
            self.health.failed(f"claiming task {name!r}", exc)
            return True
        self.health.ok()
        return added == 1

    # -- publish/subscribe ------------------------------------------------------------
    def publish(self, topic: str, value: Any) -> None:
        blob = self.codec.dumps(f"topic:{topic}", value, max_value_bytes())   # a bad value raises here, in the caller
        self._check_fork()
        self._sender.submit(self._send, topic, value, blob)   # in call order, off the caller's loop

    def _send(self, topic: str, value: Any, blob: bytes) -> None:
        now = time.time()
        try:
            self.db.run("INSERT INTO ks_messages (topic, value, at) VALUES (?, ?, ?)", (topic, blob, now))
            self._prune("ks_messages", f"DELETE FROM ks_messages WHERE at < ? - {RETAIN_S} OR id <= "
                        f"(SELECT MAX(id) FROM ks_messages) - {MAX_MESSAGES}", now)
        except (sqlite3.Error, OSError) as exc:
            self.health.failed(f"publishing to topic {topic!r}", exc)
            deliver(topic, value)
            return
        except Exception:
            log.exception("publishing to topic %r failed", topic)
            return
        self.health.ok()

    def listen(self) -> None:
        self._check_fork()
        with self._lock:
            if self._poller is not None:
                return
            # From the newest message now: one published right after subscribe() returns reaches us.
            self._last_id = self._newest_id()
            self._start_poller()

    def _newest_id(self) -> int | None:
        try:
            rows, _ = self.db.run("SELECT seq FROM sqlite_sequence WHERE name = 'ks_messages'")
        except (sqlite3.Error, OSError) as exc:
            self.health.failed("listening for published messages", exc, write=False)
            return None
        return int(rows[0][0]) if rows else 0

    def _poll(self) -> None:
        checked = time.monotonic()
        seen = self.db.inode   # the file the ids count in
        while not self._stop.is_set():
            try:
                if self._last_id is None:
                    self._last_id = self._newest_id()
                    if self._last_id is None:
                        self._stop.wait(1.0)
                        continue
                rows, _ = self.db.run("SELECT id, topic, value FROM ks_messages WHERE id > ? ORDER BY id LIMIT ?",
                                      (self._last_id, _BATCH))
                self.health.ok(write=False)
                if self.db.inode != seen:
                    replaced, seen = seen != 0, self.db.inode
                    if replaced:   # deleted or replaced, and reopened: every message in the new file is new
                        self._last_id = 0
                        continue
                for row_id, topic, blob in rows:
                    self._last_id = int(row_id)
                    self._received(str(topic), bytes(blob))
                if len(rows) == _BATCH:
                    continue
                if not rows and time.monotonic() - checked > REOPEN_CHECK_S:
                    checked = time.monotonic()
                    newest = self._newest_id()
                    if newest is not None and newest < self._last_id:   # a new file under the same inode number
                        self._last_id = 0
            except (sqlite3.Error, OSError) as exc:
                self.health.failed("reading published messages", exc, write=False)
                self._stop.wait(1.0)
                continue
            except Exception:   # never let the one poller thread die
                log.exception("the machine-local message poller failed; it goes on in 1 s")
                self._stop.wait(1.0)
                continue
            self._stop.wait(POLL_S)

    def _received(self, topic: str, blob: bytes) -> None:
        try:
            value = self.codec.loads(f"topic:{topic}", blob)
        except TamperedValueError as exc:
            log.warning("a message on topic %r was refused: %s", topic, exc)
            return
        deliver(topic, value)

    # -- shared cache -----------------------------------------------------------------
    def cached(self, key: Any, compute: Callable[[], Any], ttl: float | None) -> Any:
        self._check_fork()
        name = cache_name(key)
        purpose = f"cache:{name}"
        try:
            hit = self._read(name, purpose)
            if hit is not MISSING:
                return hit
            owner, hit = self._acquire(name, purpose)
        except (sqlite3.Error, OSError) as exc:
            self.health.failed("reading the shared cache", exc)
            return compute()
        if hit is not MISSING:
            return hit
        try:
            value = compute()
            blob = self.codec.dumps(purpose, value, max_value_bytes())
            now = time.time()
            try:
                self.db.run("INSERT OR REPLACE INTO ks_cache (key, value, expires) VALUES (?, ?, ?)",
                            (name, blob, now + (ttl if ttl is not None else DEFAULT_CACHE_TTL_S)))
                self._prune("ks_cache", "DELETE FROM ks_cache WHERE expires <= ?", now)
            except (sqlite3.Error, OSError) as exc:
                self.health.failed("writing the shared cache", exc)
            return value
        finally:
            if owner is not None:
                try:
                    self.db.run("DELETE FROM ks_locks WHERE key = ? AND owner = ?", (name, owner))
                except (sqlite3.Error, OSError) as exc:   # it expires after LOCK_S, or its owner's death frees it
                    self.health.failed("releasing a shared cache lock", exc)

    def _acquire(self, name: str, purpose: str) -> tuple[str | None, Any]:
        """Take the key's lock (returns its owner tag), or wait for the value another process computes."""
        owner = f"{os.getpid()}:{secrets.token_hex(8)}"
        deadline = time.monotonic() + LOCK_S
        while True:
            now = time.time()
            _, taken = self.db.run(
                "INSERT INTO ks_locks (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                "SET owner = excluded.owner, expires = excluded.expires WHERE ks_locks.expires <= ?",
                (name, owner, now + LOCK_S, now))
            if taken == 1:
                hit = self._read(name, purpose)   # computed by another process while we waited
                if hit is not MISSING:
                    self.db.run("DELETE FROM ks_locks WHERE key = ? AND owner = ?", (name, owner))
                    return None, hit
                return owner, MISSING
            hit = self._read(name, purpose)
            if hit is not MISSING:
                return None, hit
            self._free_if_owner_died(name)
            if time.monotonic() > deadline:
                log.warning("shared cache %s: another process held its lock for %.0f s; computing it here too",
                            name, LOCK_S)
                return None, MISSING
            time.sleep(POLL_S)

    def _free_if_owner_died(self, name: str) -> None:
        rows, _ = self.db.run("SELECT owner FROM ks_locks WHERE key = ?", (name,))
        if not rows:
            return
        holder = str(rows[0][0])
        try:
            os.kill(int(holder.split(":", 1)[0]), 0)
        except ProcessLookupError:
            log.warning("shared cache %s: the process that was computing it (pid %s) is gone; taking over",
                        name, holder.split(":", 1)[0])
            self.db.run("DELETE FROM ks_locks WHERE key = ? AND owner = ?", (name, holder))
        except (ValueError, PermissionError):
            pass   # not a pid of ours, or another user's process: wait for the lock's expiry

    def _read(self, name: str, purpose: str) -> Any:
        rows, _ = self.db.run("SELECT value FROM ks_cache WHERE key = ? AND expires > ?", (name, time.time()))
        self.health.ok(write=False)
        return decoded(self.codec, name, purpose, bytes(rows[0][0]) if rows else None)

    def close(self) -> None:
        self._stop.set()
        self._sender.shutdown(wait=True)
        if self._poller is not None:
            self._poller.join(BUSY_TIMEOUT_S + 1)
        self.db.close()

