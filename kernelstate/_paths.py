"""kernelstate's per-user runtime folder: where machine-local files shared by processes live.

``$KERNELSTATE_RUNTIME_DIR`` when set, else ``$XDG_RUNTIME_DIR/kernelstate``
(per user, cleared at logout or reboot), else ``<temp dir>/kernelstate-<uid>``.
The folder is created owner-only; an existing one that another user owns, or
that others may write to, is refused (in a shared temp dir someone else could
have made it first).
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import ConfigError

__all__ = ["ENV_RUNTIME_DIR", "runtime_dir"]

ENV_RUNTIME_DIR = "KERNELSTATE_RUNTIME_DIR"


def runtime_dir() -> Path:
    """The runtime folder (see the module docstring), created owner-only if missing."""
    explicit = os.environ.get(ENV_RUNTIME_DIR)
    if explicit:
        path = Path(explicit)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "kernelstate"
    else:
        path = Path(tempfile.gettempdir()) / f"kernelstate-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"the runtime folder {path} belongs to another user or others may write to it, so kernelstate will not "
            f"keep shared files there; remove it, or choose another folder with {ENV_RUNTIME_DIR}"
        )
    return path
