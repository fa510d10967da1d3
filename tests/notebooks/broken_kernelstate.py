"""Deliberately broken builds of kernelstate, for proving that the tutorials' asserts bite.

``apply(name)`` monkeypatches the kernelstate already importable in this
process so that it has one named bug. The notebook test runs it in a cell
before a tutorial's own cells (nothing here is imported by kernelstate, and
nothing is patched at import time). Each bug is one that a tutorial claims
cannot happen; ``tests/notebooks/test_spec_catches_bugs.py`` lists which
cells must then fail.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

BREAKAGES: dict[str, Callable[[], None]] = {}


def breakage(fn: Callable[[], None]) -> Callable[[], None]:
    BREAKAGES[fn.__name__.replace("_", "-")] = fn
    return fn


def apply(name: str) -> None:
    """Install the bug called ``name`` (one of ``BREAKAGES``)."""
    if name not in BREAKAGES:
        raise KeyError(f"no breakage {name!r}; known: {', '.join(sorted(BREAKAGES))}")
    BREAKAGES[name]()


@breakage
def threads_lose_session() -> None:
    """``execute(schedule="thread")`` and ``onload(threaded=True)`` run without the session's context."""
    import contextvars

    from kernelstate import scheduling

    def submit(self: Any, fn: Callable[[], Any], what: str) -> Future[Any]:
        return scheduling.thread_pool.get().submit(contextvars.Context().run, fn)  # an empty context

    scheduling.Scheduler.submit = submit  # type: ignore[method-assign]


@breakage
def periodic_survives_destroy() -> None:
    """Destroying a session leaves its periodic callbacks (and their timers) running."""
    from kernelstate.scheduling import Scheduler

    def stop(self: Scheduler) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()
        self.onload_queue.clear()

    Scheduler.stop = stop  # type: ignore[method-assign]


@breakage
def destroyed_hooks_skipped() -> None:
    """Destroying a session does not run its ``on_session_destroyed`` hooks."""
    from kernelstate.session import Session, hooks

    original = Session.destroy

    def destroy(self: Session) -> None:
        self.destroyed_hooks.clear()
        saved = list(hooks.destroyed)
        hooks.destroyed.clear()
        try:
            original(self)
        finally:
            hooks.destroyed[:] = saved

    Session.destroy = destroy  # type: ignore[method-assign]


@breakage
def document_kept() -> None:
    """A destroyed session keeps its Document (and every model in it)."""
    from kernelstate import session as session_module

    original = session_module.Session.destroy

    def destroy(self: session_module.Session) -> None:
        document = self.document
        original(self)
        self._document = document   # the Session's own field behind its document property

    session_module._release_document = lambda document: None
    session_module.Session.destroy = destroy  # type: ignore[method-assign]


@breakage
def models_built_per_page() -> None:
    """Every page request builds the session's Bokeh models at once, whether a browser connects or not."""
    from kernelstate.host import InProcessHost

    original = InProcessHost.create.__func__  # type: ignore[attr-defined]

    async def create(cls: type[InProcessHost], *args: Any, **kwargs: Any) -> InProcessHost:
        kwargs["lazy"] = False
        host: InProcessHost = await original(cls, *args, **kwargs)
        return host

    InProcessHost.create = classmethod(create)  # type: ignore[method-assign, assignment]


@breakage
def functions_called_once() -> None:
    """A function handed to ``ks.serve`` is called for the first session only; later ones share its result."""
    from kernelstate.loading import ObjectApp

    original = ObjectApp.run
    first: dict[int, Any] = {}

    async def run(self: ObjectApp, session: Any) -> None:
        if callable(self.obj) and not hasattr(self.obj, "param"):
            if id(self) not in first:
                first[id(self)] = self.obj()
            from kernelstate.components.base import as_component

            as_component(first[id(self)]).servable()
            return
        await original(self, session)

    ObjectApp.run = run  # type: ignore[method-assign]


@breakage
def cache_without_lock() -> None:
    """``as_cached`` computes a missing key in every thread that asks for it at the same time."""
    from kernelstate import cache as cache_module

    def as_cached(self: cache_module.Cache, key: Hashable, fn: Callable[..., Any], ttl: float | None = None,
                  shared: bool = False, **kwargs: Any) -> Any:
        full_key: Hashable = (key, *sorted(kwargs.items())) if kwargs else key
        hit = self._get_fresh(full_key)
        if hit is not cache_module._MISSING:
            return hit
        value = fn(**kwargs)
        with self._guard:
            self[full_key] = value
        return value

    cache_module.Cache.as_cached = as_cached  # type: ignore[method-assign]


@breakage
def reuse_always_renders() -> None:
    """``--reuse-sessions`` never finds a cached page: every visit runs the app code before answering."""
    from kernelstate.reuse import ReuseCache

    def get(self: ReuseCache, key: Hashable) -> None:
        self.misses += 1

    ReuseCache.get = get  # type: ignore[method-assign]


@breakage
def reuse_ignores_reads() -> None:
    """The reuse safety check is off: a page is cached whatever request values the app read."""
    from kernelstate import reuse

    reuse.uncovered_reads = lambda reads, key_func, request: []
    reuse._uncovered = lambda reads, key_func, request: []  # what ReuseCache.consider calls


@breakage
def onload_runs_at_once() -> None:
    """``onload`` callbacks run at once, before the browser has rendered the page."""
    from kernelstate.scheduling import Scheduler

    def onload(self: Scheduler, fn: Callable[[], Any], threaded: bool = False) -> None:
        self.check_alive()
        self._run_onload(fn, threaded)

    Scheduler.onload = onload  # type: ignore[method-assign]


@breakage
def views_not_updated() -> None:
    """A component changed from Python does not update the views that already show it."""
    from kernelstate.components.base import Component

    Component._on_param_change = lambda self, *events: None  # type: ignore[method-assign]
