"""Component: a param-based reactive object rendered as one Bokeh model per Document.

A component can be shown in many Documents at once (several sessions, several
notebook cells). Each Document gets its own model ("view"). A Python-side
parameter change is pushed to every view, on each view's session loop; a
browser-side change to a view sets the parameter, which pushes it to the
other views, and ``.param.watch`` callbacks run once per change.

Views are dropped when their session is destroyed, so a long-lived component
does not keep dead sessions' Documents alive.
"""
from __future__ import annotations

import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.model import Model

from ..context import served_session_or_none
from ..session import current_session
from .validation import Refused, refuse

if TYPE_CHECKING:
    from ..session import Session

# Bokeh checks the signature of every callback given to on_change/on_event (inspect.signature, per call).
# The closures made for each view carry theirs, so it is not worked out again for every session.
ON_CHANGE_SIGNATURE = inspect.signature(lambda attr, old, new: None)
ON_EVENT_SIGNATURE = inspect.signature(lambda event: None)


@dataclass
class View:
    model: Model
    session: weakref.ReferenceType[Session]
    document: weakref.ReferenceType[Document]


class Component(param.Parameterized):
    """Base of every layout, pane, widget and indicator."""

    #: component parameter -> bokeh property, for parameters synced Python -> browser.
    _synced: ClassVar[dict[str, str]] = {}
    #: bokeh property -> component parameter, for properties the browser may change.
    _from_browser: ClassVar[dict[str, str]] = {}
    #: browser-settable properties a session store does not record or replay (uploaded files).
    _not_restored: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **params: Any) -> None:
        # param names unnamed objects "IntSlider00002"; a widget without a name shows no title.
        params.setdefault("name", "")
        super().__init__(**params)  # type: ignore[no-untyped-call]  # param.Parameterized is untyped
        self._views: dict[int, View] = {}
        self._views_lock = threading.RLock()
        watched = [p for p in self.param if p != "name" or "name" in self._synced]
        watched = [p for p in watched if p in self._synced or p in self._extra_watched()]
        if watched:
            self.param.watch(self._on_param_change, watched)

    # -- subclasses implement ------------------------------------------------------
    def _create_model(self, doc: Document, session: Session) -> Model:
        raise NotImplementedError

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        """Bokeh properties for the given changed parameters (default: ``_synced``)."""
        return {self._synced[n]: self._to_model(n, getattr(self, n)) for n in names if n in self._synced}

    def _to_model(self, name: str, value: Any) -> Any:
        return value

    def _from_model(self, prop: str, value: Any) -> Any:
        return value

    def _extra_watched(self) -> list[str]:
        return []

    def _update_view(self, view: View, names: list[str]) -> None:
        props = self._model_props(names)
        if props:
            view.model.update(**props)

    # -- views ----------------------------------------------------------------------
    def get_model(self, doc: Document, session: Session | None = None) -> Model:
        """The model showing this component in ``doc`` (created on first use)."""
        session = session or current_session()
        key = id(doc)
        with self._views_lock:
            view = self._views.get(key)
            if view is not None and view.document() is doc:
                return view.model
        model = self._create_model(doc, session)
        model_ref, session_ref = weakref.ref(model), weakref.ref(session)
        for prop, name in self._from_browser.items():
            model.on_change(prop, self._browser_change(model_ref, session_ref, prop, name))
        restorable = tuple(p for p in self._from_browser if p not in self._not_restored)
        if restorable:
            session.browser_props[model] = restorable
        with self._views_lock:
            self._views[key] = View(model, weakref.ref(session), weakref.ref(doc))
        session.on_destroy(functools.partial(self._drop_view_of, key))
        return model

    def _drop_view_of(self, key: int, session: Session) -> None:
        self._drop_view(key)

    def _drop_view(self, key: int) -> None:
        with self._views_lock:
            self._views.pop(key, None)

    def views(self) -> list[View]:
        with self._views_lock:
            return list(self._views.values())

    def _browser_change(self, model_ref: weakref.ReferenceType[Model], session_ref: weakref.ReferenceType[Session],
                        prop: str, name: str) -> Callable[[str, Any, Any], None]:
        """The on_change callback of one view's browser-settable property (see validation.py)."""
        def on_change(attr: str, old: Any, new: Any) -> None:
            try:
                if getattr(self, "disabled", False):
                    raise Refused("the widget is disabled")
                value = self._from_model(prop, new)
                check_browser_value(self, name, value)
            except (Refused, ValueError, TypeError) as exc:
                refuse(session_ref(), type(self).__name__, name, new, str(exc))
                self._send_back(model_ref(), prop, name)
                return
            if not _same(getattr(self, name), value):
                self.param.update(**{name: value})
            else:
                # Accepted but normalized (an IntSlider sent 3.4 is 3): show the browser what was kept.
                self._send_back(model_ref(), prop, name)
        on_change.__signature__ = ON_CHANGE_SIGNATURE  # type: ignore[attr-defined]
        return on_change

    def _validate_browser(self, name: str, value: Any) -> None:
        """Raise :class:`Refused` if the browser may not set ``name`` to ``value`` (bounds, options...)."""

    def _send_back(self, model: Model | None, prop: str, name: str) -> None:
        """Set ``model.prop`` back to the parameter's value; the change goes to that view's browser."""
        if model is None or model.document is None:
            return
        value = self._to_model(name, getattr(self, name))
        if model.lookup(prop).readonly:
            model.set_from_json(prop, value)
        else:
            model.update(**{prop: value})

    def _on_param_change(self, *events: param.parameterized.Event) -> None:
        names = [e.name for e in events]
        for view in self.views():
            session = view.session()
            if session is None or session.destroyed:
                continue
            session.call_soon(functools.partial(self._apply, view, names))

    def _apply(self, view: View, names: list[str]) -> None:
        if view.document() is None:
            return
        self._update_view(view, names)

    # -- serving ---------------------------------------------------------------------
    def servable(self, title: str | None = None, area: str = "main") -> Component:
        """Mark this component as (part of) the page of the app being served.

        Outside a served app (a notebook, a plain script) it does nothing and
        returns the component, so notebooks can be served unchanged.
        """
        if area not in ("main", "sidebar", "header"):
            raise ValueError(f"area must be 'main', 'sidebar' or 'header'; got {area!r}")
        session = served_session_or_none()
        if session is not None:
            session.servables.append((self, area))
            if title is not None:
                session.title = title
        return self

    def save(self, filename: str | os.PathLike[str], *, title: str | None = None,
             template: str | None = None) -> Path:
        """Write this component's current state to ``filename`` as a standalone HTML page; return its path.

        The page has BokehJS and its CSS inline: it opens from ``file://``
        with no server and no network. The title and template (theme) are
        ``ks.state.template``'s (``title`` and ``template``, a template
        name, override them). Widgets, panes and plots render with their
        current values and stay interactive in the browser (sliders move,
        plots pan and zoom, ``jslink``/``CustomJS`` run), but **Python
        callbacks do not run**: no kernel or server is behind the page, so
        ``.param.watch``, bound functions and ``on_click`` handlers never
        see the page's changes.
        """
        from ..standalone import save

        return save(self, filename, title=title, template=template)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        from ..renderers import mimebundle  # a registered renderer (kernelstate.jupyter's), found by entry point

        return mimebundle(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):  # e.g. arrays, whose == is elementwise
        return a is b


def validate_parameter(component: param.Parameterized, name: str, value: Any) -> None:
    """Raise ValueError/TypeError if ``value`` is not valid for parameter ``name`` (type, bounds, objects).

    Runs param's own check without setting anything, so no watcher fires for a refused value.
    """
    parameter = component.param[name]
    if parameter.constant or parameter.readonly:
        raise Refused(f"parameter {name!r} is read-only")
    check = getattr(parameter, "_validate", None)
    if check is not None:
        check(value)


def check_browser_value(obj: param.Parameterized, name: str, value: Any) -> None:
    """Raise :class:`Refused` (or ValueError/TypeError) if a browser may not set ``obj.name`` to ``value``.

    The one check of :mod:`.validation` for values that come from a page, a
    widget's own property or the page's URL query (:mod:`kernelstate.location`):
    a disabled widget, the component's own checks (bounds, options...) and
    the parameter's type, bounds and objects.
    """
    if getattr(obj, "disabled", False) is True:
        raise Refused("the widget is disabled")
    if isinstance(obj, Component):
        obj._validate_browser(name, value)
    validate_parameter(obj, name, value)


def as_component(obj: Any) -> Component:
    """Wrap plain values: a string becomes a Markdown pane."""
    if isinstance(obj, Component):
        return obj
    if isinstance(obj, str):
        from .pane import Markdown

        return Markdown(obj)
    if isinstance(obj, Model):
        from .pane import BokehModel

        return BokehModel(obj)
    if type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas"):
        from .table import DataFrame

        return DataFrame(obj)
    bound = getattr(obj, "__ks_bound__", obj)
    from .reactive import Bound, Output  # a cycle: reactive builds on this module

    if isinstance(bound, Bound):
        # One output per bound function, however often it is placed.
        if bound.output is None:
            bound.output = Output(bound)
        return bound.output
    raise TypeError(
        f"cannot show {type(obj).__name__} object {obj!r:.80}; pass a kernelstate component, a string or a Bokeh model"
    )
