"""What ``--autoreload`` watches: the apps' files and the local modules they import.

A *local module* is a module in ``sys.modules`` whose file lies in the folder
of a served script or notebook (or below it), and not in an installed
location (``site-packages``/``dist-packages``, the Python installation or
virtualenv, kernelstate itself). When an app file changes, its sessions are
reloaded. When a local module changes, every local module is dropped from
``sys.modules`` (a module that did ``from helper import f`` holds the old
``f``), the changed file's cached bytecode is removed, and the sessions of the
apps in that folder are reloaded: open pages reload and new sessions import
the new code.

What changed is decided by modification times (:meth:`AppWatch.changed`),
checked whenever the folders of the apps report an event and at least once a
second, so a module in a sub-package, or one first imported a moment ago, is
covered without re-arming the file watcher.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)
_INSTALLED_PARTS = {"site-packages", "dist-packages"}


def _installed_roots() -> set[Path]:
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(__file__).resolve().parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(Path(path).resolve())
    return roots


class AppWatch:
    """The files ``--autoreload`` cares about for a set of app source files."""

    def __init__(self, sources: Iterable[Path]) -> None:
        self.sources = {Path(p).resolve() for p in sources}
        self.app_dirs = {p.parent for p in self.sources}
        self._installed = _installed_roots()
        self._mtimes: dict[Path, int] = {}
        self._checked_ns = 0
        self.changed()

    def _is_local(self, path: Path) -> bool:
        if _INSTALLED_PARTS & set(path.parts):
            return False
        if any(path.is_relative_to(root) for root in self._installed):
            return False
        return any(path.is_relative_to(d) for d in self.app_dirs)

    def local_modules(self) -> dict[Path, str]:
        """File -> module name, for every loaded local module."""
        found: dict[Path, str] = {}
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not file or not file.endswith(".py"):
                continue
            path = Path(file).resolve()
            if self._is_local(path):
                found[path] = name
        return found

    def changed(self) -> set[Path]:
        """App sources and loaded local modules modified (or removed) since the last call.

        A file seen for the first time (a module imported since) counts as changed
        only if it was modified after the last call.
        """
        files = self.sources | set(self.local_modules())
        changed: set[Path] = set()
        checked, self._checked_ns = self._checked_ns, time.time_ns()
        for path in files:
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = -1
            before = self._mtimes.get(path)
            if (before is not None and before != mtime) or (before is None and mtime > checked):
                changed.add(path)
            self._mtimes[path] = mtime
        return changed

    def reload(self, changed: set[Path]) -> set[Path]:
        """Forget local modules if one of them changed; return the app sources whose sessions must reload."""
        affected = {p for p in changed if p in self.sources}
        local = self.local_modules()
        touched = [p for p in changed if p in local]
        if touched:
            for _path, name in local.items():
                sys.modules.pop(name, None)
            for path in touched:
                _drop_bytecode(path)
            importlib.invalidate_caches()
            affected |= {s for s in self.sources if any(p.is_relative_to(s.parent) for p in touched)}
            log.info("autoreload: forgot local modules %s", ", ".join(sorted(local.values())))
        return affected


def _drop_bytecode(path: Path) -> None:
    """Remove ``path``'s cached bytecode: a same-size edit within the same second would otherwise reuse it."""
    try:
        Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
    except (OSError, NotImplementedError, ValueError):
        log.debug("could not remove the bytecode cache of %s", path, exc_info=True)
