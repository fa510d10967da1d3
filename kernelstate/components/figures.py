"""``ks.pane.Bokeh``: a Bokeh figure (or any Bokeh layout) shown in every session and notebook cell.

A Bokeh model belongs to one Document, and every view (a browser tab's
session, a notebook cell) has its own Document, so:

- given a **factory** (a callable returning a model), the pane calls it once
  per view, with that view's session active;
- given a **model**, the pane keeps it as the template in a private Document
  and shows a clone of it in each view (same model ids, so each change maps
  to the clone's counterpart). Changes to the template's data sources are
  mirrored to every clone as they were made -- ``source.stream(...)`` as a
  stream patch, ``source.patch(...)`` as a patch, ``source.data = ...`` as a
  data change -- as are plain property changes (``fig.title.text = ...``).

A figure that an app builds inside its session's code is that session's
alone: its changes reach only that session's views. Python callbacks
registered on the template (``on_change``, ``on_event``) are not copied to
the clones; use kernelstate widgets for interaction.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bokeh.document import Document
from bokeh.document.events import (
    ColumnDataChangedEvent,
    ColumnsPatchedEvent,
    ColumnsStreamedEvent,
    ModelChangedEvent,
)
from bokeh.model import Model

from ..context import activate
from .base import Component, View

if TYPE_CHECKING:
    from ..session import Session

log = logging.getLogger(__name__)


def _has_models(value: Any) -> bool:
    if isinstance(value, Model):
        return True
    if isinstance(value, dict):
        return any(_has_models(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_models(v) for v in value)
    return False


class Bokeh(Component):
    """Show a Bokeh model (cloned per view, its data changes mirrored) or a factory's model (one per view)."""

    def __init__(self, object: Model | Callable[[], Model], **params: Any) -> None:
        if not (isinstance(object, Model) or callable(object)):
            raise TypeError(f"ks.pane.Bokeh needs a Bokeh model or a function returning one; got {object!r:.80}")
        super().__init__(**params)
        self.object = object
        self._template: Document | None = None
        if isinstance(object, Model):
            if object.document is not None:
                raise ValueError(f"{object!r} is already in a Document; pass a model that is not shown yet, "
                                 "or a function that builds one")
            self._template = Document()
            self._template.add_root(object)
            self._template.on_change(self._mirror)

    def _create_model(self, doc: Document, session: Session) -> Model:
        if self._template is None:
            with activate(session):
                model = self.object()  # type: ignore[operator]
            if not isinstance(model, Model):
                raise TypeError(f"the ks.pane.Bokeh factory returned {model!r:.80}, not a Bokeh model")
            return model
        copy = Document.from_json(self._template.to_json())
        clone = copy.roots[0]
        copy.remove_root(clone)
        return clone

    def _mirror(self, event: Any) -> None:
        if not isinstance(event, (ColumnsStreamedEvent, ColumnsPatchedEvent, ColumnDataChangedEvent, ModelChangedEvent)):
            return
        if isinstance(event, ModelChangedEvent) and _has_models(event.new):
            log.debug("not mirroring %s.%s: it refers to models", type(event.model).__name__, event.attr)
            return
        for view in self.views():
            session = view.session()
            if session is not None and not session.destroyed:
                session.call_soon(functools.partial(self._mirror_to, view, event))

    def _mirror_to(self, view: View, event: Any) -> None:
        doc = view.document()
        target: Any = doc.get_model_by_id(event.model.id) if doc is not None else None
        if target is None:
            return
        if isinstance(event, ColumnsStreamedEvent):
            target.stream(event.data, rollover=event.rollover)
        elif isinstance(event, ColumnsPatchedEvent):
            target.patch(event.patches)
        elif isinstance(event, ColumnDataChangedEvent):
            # copies: the template's columns are mutated in place by later streams
            source: Any = event.model
            target.data = {name: _copy(column) for name, column in source.data.items()}
        else:
            setattr(target, event.attr, event.new)


def _copy(column: Any) -> Any:
    return column.copy() if hasattr(column, "copy") else list(column)
