"""Stable identities of a Document's models, and the browser-settable values under them.

A model's identity is its path from the Document's roots, the way a visitor
would walk it: the root's position, then property names (sorted) and
positions in lists, ending in the model's type, e.g.
``0/children.1/tabs.0/child:Slider``. It does not use Bokeh ids, so the same
app code builds the same identities in any process. A model reachable along
several paths takes the first one in this order.

Only properties a component lets the browser set (``Session.browser_props``,
registered by :class:`~kernelstate.components.base.Component`) are recorded,
and they are restored the way a browser's change arrives: ``set_from_json`` on
the model, so the component validates the value, sets its parameter and its
watchers run.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bokeh.core.serialization import Deserializer, Serializer
from bokeh.document.events import DocumentChangedEvent, ModelChangedEvent, RootAddedEvent, RootRemovedEvent
from bokeh.model import Model

from ..context import activate

if TYPE_CHECKING:
    from bokeh.document import Document

    from ..session import Session

__all__ = ["MAX_VALUE_BYTES", "RecordedValues", "apply_values", "collect_values", "walk"]

log = logging.getLogger(__name__)
MAX_VALUE_BYTES = 64 * 1024
# Properties that can hold models but never a component's: skipped (reading a Bokeh default is not free).
SKIPPED = frozenset({"js_event_callbacks", "js_property_callbacks", "tags", "stylesheets", "context_menu",
                     "css_variables", "styles", "elements", "syncable", "subscribed_events"})
_ref_names: dict[type[Model], tuple[str, ...]] = {}  # per model class: its properties that can hold models


def _refs_of(cls: type[Model]) -> tuple[str, ...]:
    names = _ref_names.get(cls)
    if names is None:
        names = _ref_names[cls] = tuple(sorted(n for n in cls.properties_with_refs() if n not in SKIPPED))
    return names


def walk(document: Document) -> Iterator[tuple[str, Model]]:
    """``(identity, model)`` for every model reachable from the roots, in document order."""
    seen: set[str] = set()
    for i, root in enumerate(document.roots):
        yield from _visit(root, str(i), seen)


def _visit(model: Model, path: str, seen: set[str]) -> Iterator[tuple[str, Model]]:
    if model.id in seen:
        return
    seen.add(model.id)
    yield f"{path}:{type(model).__name__}", model
    for name in _refs_of(type(model)):
        yield from _visit_value(getattr(model, name), f"{path}/{name}", seen)


def _visit_value(value: Any, path: str, seen: set[str]) -> Iterator[tuple[str, Model]]:
    if isinstance(value, Model):
        yield from _visit(value, path, seen)
    elif isinstance(value, (list, tuple)):
        for j, item in enumerate(value):
            yield from _visit_value(item, f"{path}.{j}", seen)
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _visit_value(value[key], f"{path}.{key}", seen)


def _has_model(value: Any) -> bool:
    if isinstance(value, Model):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_model(v) for v in value)
    if isinstance(value, dict):
        return any(_has_model(v) for v in value.values())
    return False


_TOO_BIG = object()  # a value over MAX_VALUE_BYTES: not recorded (and said so once)
_HOLDS_MODELS = object()  # a value made of models: the app rebuilds those, not the record


class RecordedValues:
    """One session's browser-settable values in document order, kept up to date between records.

    The walk of the Document is redone only after its structure changed, and a
    value is serialized again only after it changed, so writing a record costs
    a dictionary lookup per settable value rather than a walk of every model.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._order: list[tuple[str, str, tuple[str, ...], Model]] | None = None  # identity, id, props, model
        self._reps: dict[tuple[str, str], Any] = {}

    def structure_changed(self) -> None:
        self._order = None

    def value_changed(self, model: Model, prop: str) -> None:
        self._reps.pop((model.id, prop), None)

    def collect(self) -> tuple[list[list[Any]], list[str]]:
        """``([identity, property, json value], ...)`` in document order, and the values too big to keep."""
        document = self.session.document
        if document is None:
            return [], []
        if self._order is None:
            settable = self.session.browser_props
            self._order = [(identity, model.id, settable[model], model) for identity, model in walk(document)
                           if model in settable]
            self._reps = {}
        values: list[list[Any]] = []
        skipped: list[str] = []
        for identity, model_id, props, model in self._order:
            for prop in props:
                key = (model_id, prop)
                if key not in self._reps:
                    self._reps[key] = _encode(getattr(model, prop))
                rep = self._reps[key]
                if rep is _TOO_BIG:
                    skipped.append(f"{identity}.{prop}")
                elif rep is not _HOLDS_MODELS:
                    values.append([identity, prop, rep])
        return values, skipped


def _encode(value: Any) -> Any:
    if _has_model(value):
        return _HOLDS_MODELS
    rep = Serializer(deferred=False).encode(value)
    return _TOO_BIG if len(json.dumps(rep, default=str)) > MAX_VALUE_BYTES else rep


def collect_values(session: Session) -> tuple[list[list[Any]], list[str]]:
    """The browser-settable values of the session's Document, in document order, and what was too big."""
    return RecordedValues(session).collect()


class _StructureWatch:
    """Notes when the Document's structure (roots, or properties holding models) changes."""

    def __init__(self, document: Document) -> None:
        self.changed = False
        self.document = document
        document.on_change(self)

    def __call__(self, event: DocumentChangedEvent) -> None:
        if isinstance(event, (RootAddedEvent, RootRemovedEvent)):
            self.changed = True
        elif isinstance(event, ModelChangedEvent) and event.attr in event.model.properties_with_refs():
            self.changed = True

    def close(self) -> None:
        self.document.remove_on_change(self)


def apply_values(session: Session, values: list[list[Any]]) -> tuple[int, list[str]]:
    """Set each saved value as if the browser had sent it, in order; return (restored, dropped).

    A value is dropped when its model is no longer at that identity, the
    property is not browser-settable there, or the component refuses it.
    """
    document = session.document
    if document is None:
        return 0, [f"{identity}.{prop}" for identity, prop, _ in values]
    watch = _StructureWatch(document)
    index = dict(walk(document))
    restored, dropped = 0, []
    try:
        with activate(session):
            for entry in values:
                identity, prop, rep = entry
                if watch.changed:
                    index, watch.changed = dict(walk(document)), False
                model = index.get(identity)
                if model is None or prop not in session.browser_props.get(model, ()):
                    dropped.append(f"{identity}.{prop}")
                    continue
                try:
                    value = Deserializer().decode(rep)
                    model.set_from_json(prop, value)
                except Exception as exc:
                    log.debug("restoring %s.%s failed: %s (session=%s)", identity, prop, exc, session.id)
                    dropped.append(f"{identity}.{prop}")
                    continue
                if Serializer(deferred=False).encode(getattr(model, prop)) == rep:
                    restored += 1
                else:
                    dropped.append(f"{identity}.{prop}")
    finally:
        watch.close()
    return restored, dropped
