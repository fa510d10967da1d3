"""Paths confined to a root folder: the one rule every host uses to decide what it may serve.

A path is inside a root when its real path (every symlink resolved, ``..``
collapsed) is the root's real path or below it. A symlink that stays inside
the root is fine; one that leads out of it is not, whatever its name says.
The Jupyter extension (``kernelstate/apps/<path>`` and its app index) and
``kernelstate serve DIR`` (so the jupyter-server-proxy launcher, which runs
it on a notebooks folder) both decide with :func:`confined_path` /
:func:`is_within`, so the hosts cannot drift apart.

Standard library only: the launcher's module imports this in the Jupyter
server process.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import KernelstateError


class PathOutsideRootError(KernelstateError, ValueError):
    """A path resolves (after symlinks) outside the folder it must stay in.

    Attributes:
        path: the path as given.
        real: where it resolves to.
        root: the real path of the folder.
    """

    def __init__(self, path: str, real: str, root: str) -> None:
        super().__init__(f"{path!r} resolves to {real!r}, outside {root!r}; only files inside that folder "
                         "are served (copy the file into it, or serve its own folder)")
        self.path = path
        self.real = real
        self.root = root


def _inside(real: str, real_root: str) -> bool:
    # rstrip: the filesystem root "/" would otherwise need "//" as its prefix.
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def is_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (absolute, or relative to the working directory) resolves inside ``root``."""
    return _inside(os.path.realpath(path), os.path.realpath(root))


def confined_path(root: str | os.PathLike[str], *parts: str) -> Path:
    """The real path of ``root/parts...``, which must resolve inside ``root``.

    Args:
        root: the folder to stay in.
        parts: path segments below it (already checked for ``..`` and absolute
            segments by the caller if it wants those to be a different error;
            they are safe here either way).

    Raises:
        PathOutsideRootError: the path, after symlinks, is not inside ``root``.
    """
    real_root = os.path.realpath(root)
    given = os.path.join(real_root, *parts)
    real = os.path.realpath(given)
    if not _inside(real, real_root):
        raise PathOutsideRootError(given, real, real_root)
    return Path(real)
