"""App loading: scripts, notebooks, directories and Python objects -> AppSpec.

An :class:`AppSpec` knows how to build one session's page: it runs the app's
code afresh with the session active (so module globals are per session), then
collects what was marked ``.servable()`` plus the template's areas as the
Document's roots. Parsed and compiled sources are cached per file and
re-read when the file changes.

Notebook cells run in order; IPython magics (``%``/``%%``) and shell escapes
(``!``) are skipped with a logged warning; top-level ``await`` works.

A file that cannot be compiled (a syntax error, a notebook that is not valid
notebook JSON) does not stop the others: its :class:`FileApp` is still
created, the problem is logged once naming the file and line, and each
request for it gets the app's error page until the file is fixed.

A session's module globals outlive it when something process-wide still uses
them (a named task, a created hook, an object in ``ks.state.cache``), so that
code keeps working; they are garbage once nothing does. Only a failed run's
globals are cleared when its session is destroyed, as its traceback would
otherwise keep them alive.
"""
from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import activate
from .errors import AppLoadError
from .pageplan import PagePlan
from .paths import PathOutsideRootError, confined_path
from .session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageSpec:
    """What a page needs from a built session: the kernel host sends the same data."""

    title: str
    template_name: str
    roots: list[tuple[str, str]]          # (root model id, area) in document order
    raw_css: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "template_name": self.template_name,
                "roots": [list(r) for r in self.roots], "raw_css": list(self.raw_css)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageSpec:
        return cls(data["title"], data["template_name"], [tuple(r) for r in data["roots"]], list(data.get("raw_css", [])))


@dataclass
class _Compiled:
    mtime: float
    blocks: list[types.CodeType]
    title: str


_compiled: dict[str, _Compiled] = {}
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _title_from_markdown(text: str) -> str | None:
    for line in text.splitlines():
        m = re.match(r"#+\s+(.*)", line.strip())
        if m:
            return m.group(1).strip()
    return None


def _notebook_sources(path: Path) -> tuple[list[str], str | None]:
    import warnings

    import nbformat

    with warnings.catch_warnings(), path.open(encoding="utf-8") as f:
        # Notebooks written by older tools lack cell ids; that is no reason to refuse them.
        warnings.simplefilter("ignore")
        nb = nbformat.read(f, as_version=4)  # type: ignore[no-untyped-call]
    sources: list[str] = []
    skipped: list[str] = []
    title = None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and title is None:
            title = _title_from_markdown(cell.source)
        if cell.cell_type != "code":
            continue
        src = cell.source
        if src.lstrip().startswith("%%"):
            skipped.append(src.strip().splitlines()[0][:60])
            continue
        kept = []
        for line in src.splitlines():
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")):
                skipped.append(stripped[:60])
                kept.append("")
            else:
                kept.append(line)
        sources.append("\n".join(kept))
    if skipped:
        # Expected in a tutorial notebook; said once per file (compile_file caches by mtime).
        log.info("served %s without its %d IPython magic/shell line(s): %s", path.name, len(skipped),
                 "; ".join(skipped))
    return sources, title


def compile_file(path: Path) -> _Compiled:
    """Parse and compile a script or notebook (cached by mtime).

    Raises:
        AppLoadError: the file has a syntax error or is not a valid notebook; the
            message names the file, the cell (notebooks) and the line.
    """
    key = str(path)
    mtime = path.stat().st_mtime
    cached = _compiled.get(key)
    if cached is not None and cached.mtime == mtime:
        return cached
    if path.suffix == ".ipynb":
        try:
            sources, title = _notebook_sources(path)
        except Exception as exc:
            raise AppLoadError(f"{path} is not a valid notebook: {type(exc).__name__}: {str(exc)[:300]}; "
                               "open and save it in Jupyter, or fix its JSON", path=key, cause=exc) from exc
    else:
        text = path.read_text(encoding="utf-8")
        sources = [text]
        title = None
    blocks = []
    for n, src in enumerate(sources, 1):
        if not src.strip():
            continue
        # A notebook cell's tracebacks and syntax errors name the cell: its lines count from the cell's start.
        filename = f"{path} (code cell {n})" if path.suffix == ".ipynb" else str(path)
        try:
            blocks.append(compile(src, filename, "exec", flags=_FLAGS, dont_inherit=True))
        except SyntaxError as exc:
            where = f"code cell {n}, line {exc.lineno}" if path.suffix == ".ipynb" else f"line {exc.lineno}"
            raise AppLoadError(f"{path} ({where}): SyntaxError: {exc.msg}; fix the file and reload the page",
                               path=key, cause=exc) from exc
    if path.suffix != ".ipynb" and blocks:
        doc = ast.get_docstring(ast.parse(sources[0], filename=str(path)))
        title = doc.strip().splitlines()[0] if doc else None
    entry = _Compiled(mtime, blocks, title or _stem_title(path))
    _compiled[key] = entry
    return entry


def _stem_title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ")


class AppSpec:
    """One servable app at ``route`` (like ``/clock``)."""

    def __init__(self, route: str, title: str) -> None:
        self.route = route
        self.title = title

    @property
    def source_path(self) -> Path | None:
        return None

    async def run(self, session: Session) -> None:
        """Run the app's code for ``session`` (the session is active)."""
        raise NotImplementedError

    async def build(self, session: Session) -> PageSpec:
        """Run the app for ``session`` and put its roots into the session's Document."""
        plan = await self.plan(session)
        with activate(session):
            return plan.populate()

    async def plan(self, session: Session) -> PagePlan:
        """Run the app for ``session`` and plan its page; :meth:`PagePlan.populate` builds the models."""
        with activate(session):
            try:
                await self.run(session)
            except AppLoadError:
                raise
            except Exception as exc:
                raise AppLoadError(
                    f"app {self.route} raised {type(exc).__name__}: {exc}", path=self.route, cause=exc
                ) from exc
            return PagePlan(session, self.title)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.route}>"


async def _run_blocks(blocks: list[types.CodeType], namespace: dict[str, Any]) -> None:
    for code in blocks:
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result


class FileApp(AppSpec):
    """A ``.py`` script or ``.ipynb`` notebook, run afresh for every session."""

    def __init__(self, path: Path, route: str | None = None) -> None:
        self.path = path.resolve()
        try:
            title = compile_file(self.path).title
        except AppLoadError as exc:
            # Serve the others; this one answers its error page until it is fixed.
            log.error("cannot load app %s: %s (it answers an error page until fixed; other apps are served)",
                      self.path.name, exc)
            title = _stem_title(self.path)
        # Named as given: a link in a served folder is served under its own name, as the extension does.
        super().__init__(route or "/" + path.stem, title)

    @property
    def source_path(self) -> Path | None:
        return self.path

    async def run(self, session: Session) -> None:
        compiled = compile_file(self.path)
        self.title = compiled.title
        module = types.ModuleType(f"kernelstate_app_{session.serial}")
        module.__file__ = str(self.path)
        namespace = module.__dict__
        namespace["__builtins__"] = __builtins__
        directory = str(self.path.parent)
        cwd = os.getcwd()
        added = directory not in sys.path
        if added:
            sys.path.insert(0, directory)
        os.chdir(directory)
        try:
            await _run_blocks(compiled.blocks, namespace)
        except BaseException:
            # A failed app's traceback would keep its globals alive: drop them with the session.
            session.on_destroy(lambda s: namespace.clear())
            raise
        finally:
            os.chdir(cwd)
            if added and directory in sys.path:
                sys.path.remove(directory)


class ObjectApp(AppSpec):
    """A component (shared by every session) or a callable (called per session)."""

    def __init__(self, obj: Any, route: str, title: str | None = None) -> None:
        self.obj = obj
        super().__init__(route, title or _object_title(obj, route))

    async def run(self, session: Session) -> None:
        obj = self.obj
        if callable(obj) and not _is_component(obj):
            obj = obj()
            if inspect.isawaitable(obj):
                obj = await obj
        if obj is None:
            return
        if not session.servables:
            from .components.base import as_component

            as_component(obj).servable()


def _is_component(obj: Any) -> bool:
    from .components.base import Component

    return isinstance(obj, Component)


def _object_title(obj: Any, route: str) -> str:
    if callable(obj) and not _is_component(obj):
        doc = inspect.getdoc(obj)
        if doc:
            return doc.strip().splitlines()[0]
    return route.strip("/") or "app"


def populate_document(session: Session, default_title: str) -> PageSpec:
    """Turn the session's servables and template areas into Document roots (the session is active)."""
    return PagePlan(session, default_title).populate()


def discover(paths: list[str | Path]) -> list[AppSpec]:
    """Apps for the CLI's APP arguments: files, or every script/notebook in a directory."""
    apps: list[AppSpec] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AppLoadError(f"app path {str(raw)!r} does not exist; pass a .py script, an .ipynb notebook or a directory", path=str(raw))
        if path.is_dir():
            apps.extend(_folder_apps(path))
        elif path.suffix in (".py", ".ipynb"):
            apps.append(FileApp(path))
        else:
            raise AppLoadError(f"cannot serve {str(raw)!r}: expected a .py script, an .ipynb notebook or a directory", path=str(raw))
    routes: dict[str, AppSpec] = {}
    for app in apps:
        if app.route in routes:
            raise AppLoadError(f"two apps would be served at {app.route}: {routes[app.route]} and {app}", path=app.route)
        routes[app.route] = app
    return apps


def _folder_apps(folder: Path) -> list[AppSpec]:
    """The scripts and notebooks directly in ``folder``; symlinks leading out of it are skipped.

    The same confinement as the Jupyter extension's: a link in a served
    folder must not publish a file from elsewhere (a private notebook, another
    project's script) as an app.
    """
    apps: list[AppSpec] = []
    for child in sorted(folder.iterdir()):
        if child.suffix not in (".py", ".ipynb") or child.name.startswith(("_", ".")):
            continue
        try:
            real = confined_path(folder, child.name)
        except PathOutsideRootError as exc:
            log.warning("not serving %s: %s", child, exc)
            continue
        if real.is_file():
            apps.append(FileApp(child))
    return apps


def apps_from_object(obj: Any) -> list[AppSpec]:
    """Apps for ``ks.serve(obj)``: a dict of route -> object, a path, or one object."""
    if isinstance(obj, dict):
        return [_one(value, "/" + str(key).strip("/")) for key, value in obj.items()]
    return [_one(obj, "/")]


def _one(obj: Any, route: str) -> AppSpec:
    if isinstance(obj, (str, Path)) and Path(obj).suffix in (".py", ".ipynb"):
        return FileApp(Path(obj), route if route != "/" else None)
    return ObjectApp(obj, route)


Builder = Callable[[Session], Any]
