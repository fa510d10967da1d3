"""First use of a page token across the processes of one machine.

A stateless page's token (:mod:`kernelstate.web.anyproc`) lets whichever
process its WebSocket reaches create the session. It must do so once: a
reconnect of the same tab (BokehJS reconnects with the page's token) that
reaches another process, or the same one after the session was destroyed,
must not silently get a new session with the app's initial values; it is told
to reload, as on one process (until a session store can rebuild it).

So the first process to create a session from a token claims its id here: an
empty file created with ``O_CREAT | O_EXCL`` (atomic across processes) in an
owner-only directory of the runtime dir, named by a hash of the id, under a
directory named by a hash of the signing key (processes that share
``KERNELSTATE_SECRET_KEY`` share it). Claims older than the token lifetime
are swept. Processes on other machines do not see these files: there, a
reconnect that reaches another machine gets a new session.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)


class FirstUseError(ConfigError):
    """The claims directory cannot be used safely."""


def default_directory(key: bytes) -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"kernelstate-{os.getuid()}" / ("claims-" + hashlib.sha256(b"claims:" + key).hexdigest()[:16])


def _owner_only_dir(path: Path) -> None:
    for directory in (path.parent, path):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise FirstUseError(f"{directory} is not a directory only this user may use (mode "
                                f"{stat.filemode(info.st_mode)}, owner uid {info.st_uid}); remove it or set "
                                "XDG_RUNTIME_DIR to a private directory")


class FirstUse:
    """Session ids whose token has been used to create a session, shared by this machine's processes."""

    def __init__(self, directory: Path, lifetime_s: float) -> None:
        self.directory = directory
        self.lifetime_s = lifetime_s
        _owner_only_dir(directory)

    def _path(self, session_id: str) -> Path:
        return self.directory / hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:40]

    def claim(self, session_id: str) -> bool:
        """True for the first claim of ``session_id`` on this machine, False for any later one."""
        try:
            os.close(os.open(self._path(session_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True

    def release(self, session_id: str) -> None:
        """Undo a claim whose session could not be created (the tab may try again)."""
        self._path(session_id).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove claims older than the token lifetime (their tokens are expired); returns how many."""
        cutoff = time.time() - self.lifetime_s - 60
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # another process swept it
        return removed
