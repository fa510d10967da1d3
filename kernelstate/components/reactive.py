"""Reactive functions: ``ks.bind`` and ``ks.depends``, and the output component that shows them.

``ks.bind(fn, *args, **kwargs)`` ties a function to widgets (their ``value``)
and ``param`` parameters (``widget.param.start``, ``obj.param.x``) given as
arguments; other arguments are passed as they are. Displaying the result (in
a layout, with ``.servable()``, in a notebook cell) shows what ``fn`` returns
-- a component, a string (Markdown), a Bokeh model, a DataFrame, anything
else as text -- and re-runs ``fn`` whenever an argument changes.

Invariants:
- ``fn`` runs once per view and change, on that view's session loop with that
  session active, so ``ks.state`` inside it is the session that shows it;
- a coroutine function shows a loading state until it returns; an async
  generator replaces the output with every value it yields; a run still in
  flight when the arguments change again is cancelled;
- runs are tasks of their session's scheduler: they stop when it is destroyed;
- a run that raises is logged with its session id and the previous output stays.
"""
from __future__ import annotations

import functools
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import param
from bokeh.document import Document
from bokeh.models import Column as BkColumn
from bokeh.models import Model

from ..context import activate
from .base import Component, View, as_component

if TYPE_CHECKING:
    from ..session import Session

app_log = logging.getLogger("kernelstate.application")

Dependency = tuple[param.Parameterized, str]


def _dependency(arg: Any) -> Dependency | None:
    """(owner, parameter name) when ``arg`` is a widget/component with a value, or a bound Parameter."""
    owner = getattr(arg, "owner", None)
    if isinstance(arg, param.Parameter) and isinstance(owner, param.Parameterized) and arg.name is not None:
        return owner, arg.name
    if isinstance(arg, param.Parameterized) and "value" in arg.param:
        return arg, "value"
    return None


def _current(arg: Any) -> Any:
    if isinstance(arg, Bound):
        return arg()
    dep = _dependency(arg)
    return arg if dep is None else getattr(dep[0], dep[1])


class Bound:
    """A function bound to widgets/parameters; call it for the current result, display it to see it live."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"ks.bind needs a function as its first argument; got {fn!r:.80}")
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.output: Output | None = None  # the component showing it, made on first display
        functools.update_wrapper(self, fn)

    def dependencies(self) -> list[Dependency]:
        deps: list[Dependency] = []
        for arg in [*self.args, *self.kwargs.values()]:
            if isinstance(arg, Bound):
                deps.extend(arg.dependencies())
            elif (dep := _dependency(arg)) is not None:
                deps.append(dep)
        return deps

    def __call__(self) -> Any:
        return self.fn(*map(_current, self.args), **{k: _current(v) for k, v in self.kwargs.items()})

    def servable(self, title: str | None = None, area: str = "main") -> Component:
        return as_component(self).servable(title, area)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return as_component(self)._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        return f"ks.bind({getattr(self.fn, '__qualname__', self.fn)!r}, {len(self.dependencies())} dependencies)"


def bind(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Bound:
    """Bind ``fn`` to widgets and parameters (see the module docstring), like ``pn.bind``."""
    return Bound(fn, *args, **kwargs)


def depends(*deps: Any, watch: bool = False, **kwdeps: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare what a function depends on: ``@ks.depends(slider, text=box)``.

    The decorated function still takes its arguments when called directly;
    displayed without arguments it is live, like ``ks.bind(fn, *deps, **kwdeps)``.
    With ``watch=True`` it also runs (once, in the context of the change) on every change.
    """
    def decorate(fn: Callable[..., Any]) -> Any:
        bound = Bound(fn, *deps, **kwdeps)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        wrapper.__ks_bound__ = bound  # type: ignore[attr-defined]
        # shown like the bound function: as a cell's result, or in a served page
        wrapper._repr_mimebundle_ = bound._repr_mimebundle_  # type: ignore[attr-defined]
        wrapper.servable = bound.servable  # type: ignore[attr-defined]
        if watch:
            for owner, name in bound.dependencies():
                owner.param.watch(lambda event: bound(), name)
        return wrapper
    return decorate


def to_component(value: Any) -> Component:
    """What a reactive function returned, as a component."""
    if value is None:
        from .pane import Str

        return Str("")
    try:
        return as_component(value)
    except TypeError:
        from .pane import Str

        return Str(value)


class Output(Component):
    """Shows the result of a bound function in every view, re-running it per view on change."""

    def __init__(self, bound: Bound, **params: Any) -> None:
        super().__init__(**params)
        self.bound = bound
        self._runs: dict[int, Any] = {}  # view key -> the asyncio task of the run in flight
        self._watchers: list[Any] = []

    def _create_model(self, doc: Document, session: Session) -> Model:
        # Watch the arguments only while shown somewhere, so an output of a session that
        # ended does not stay registered on long-lived widgets.
        if not self._watchers:
            self._watchers = [owner.param.watch(self._changed, name) for owner, name in self.bound.dependencies()]
        container = BkColumn(children=[], css_classes=["ks-output"])
        key = id(doc)
        session.call_soon(lambda: self._run(key, weakref.ref(container), doc, session))
        return container

    def _drop_view(self, key: int) -> None:
        super()._drop_view(key)
        run = self._runs.pop(key, None)
        if run is not None:
            run.cancel()
        if not self.views():
            for watcher in self._watchers:
                watcher.inst.param.unwatch(watcher)
            self._watchers = []

    def _changed(self, *events: Any) -> None:
        for key, view in list(self._views_items()):
            session, doc = view.session(), view.document()
            if session is None or doc is None or session.destroyed:
                continue
            session.call_soon(functools.partial(self._run, key, weakref.ref(view.model), doc, session))

    def _views_items(self) -> list[tuple[int, View]]:
        with self._views_lock:
            return list(self._views.items())

    def _run(self, key: int, model_ref: weakref.ReferenceType[Model], doc: Document, session: Session) -> None:
        previous = self._runs.pop(key, None)
        if previous is not None:
            previous.cancel()
        if session.destroyed:
            return
        what = f"bound function {getattr(self.bound.fn, '__qualname__', self.bound.fn)}"
        try:
            with activate(session):
                result = self.bound()
        except Exception:
            app_log.exception("%s failed (session=%s)", what, session.id)
            return
        if inspect.isasyncgen(result):
            self._spawn(key, model_ref, doc, session, self._iterate(result, model_ref, doc, session), what)
        elif inspect.isawaitable(result):
            self._spawn(key, model_ref, doc, session, self._await(result, model_ref, doc, session), what)
        else:
            self._show(model_ref, doc, session, result)
            if previous is not None:
                self._loading(model_ref, False)

    def _spawn(self, key: int, model_ref: weakref.ReferenceType[Model], doc: Document, session: Session,
               coro: Any, what: str) -> None:
        self._loading(model_ref, True)
        task = session.scheduler.spawn(coro, what)
        if task is None:
            return
        self._runs[key] = task

        def done(t: Any) -> None:
            if self._runs.get(key) is t:
                del self._runs[key]
                self._loading(model_ref, False)
        task.add_done_callback(done)

    async def _await(self, awaitable: Any, model_ref: weakref.ReferenceType[Model], doc: Document,
                     session: Session) -> None:
        self._show(model_ref, doc, session, await awaitable)
        self._loading(model_ref, False)  # with the result, in the same patch

    async def _iterate(self, agen: Any, model_ref: weakref.ReferenceType[Model], doc: Document,
                       session: Session) -> None:
        try:
            async for value in agen:
                self._show(model_ref, doc, session, value)
                self._loading(model_ref, False)
        finally:
            await agen.aclose()

    def _show(self, model_ref: weakref.ReferenceType[Model], doc: Document, session: Session, value: Any) -> None:
        container: Any = model_ref()
        if container is None or session.destroyed:
            return
        child = to_component(value)
        container.children = [child.get_model(doc, session)]

    @staticmethod
    def _loading(model_ref: weakref.ReferenceType[Model], loading: bool) -> None:
        container: Any = model_ref()
        if container is None:
            return
        container.css_classes = ["ks-output", "ks-loading"] if loading else ["ks-output"]
        container.styles = {"opacity": "0.5"} if loading else {}

    def running(self) -> int:
        """How many views have a run in flight (for tests and the loading state)."""
        return len(self._runs)
