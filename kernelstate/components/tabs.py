"""Tabs and Accordion: layouts whose children have titles, one (or several) shown at a time.

Children are given as components (titled by their ``name``) or as
``(title, component)`` pairs, positionally, in ``objects`` or through the
list methods. ``Tabs.active`` (the shown tab's index) and ``Accordion.active``
(the open sections' indices) are synced both ways; a browser index that is
not a tab/section is refused (see ``validation.py``).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.events import ButtonClick
from bokeh.models import Column as BkColumn
from bokeh.models import Model, TabPanel
from bokeh.models import Tabs as BkTabs
from bokeh.models.ui import UIElement
from bokeh.models.widgets import Button as BkButton

from .base import View, as_component
from .layout import ListLike
from .validation import Refused, refuse

if TYPE_CHECKING:
    from ..session import Session


class _Titled(ListLike):
    """A ListLike whose children carry titles (``(title, obj)`` pairs or the child's ``name``)."""

    def __init__(self, *objects: Any, **params: Any) -> None:
        self._titles: dict[int, str] = {}
        if "objects" in params:
            params["objects"] = [self._wrap(o) for o in params["objects"]]
        super().__init__(*[self._wrap(o) for o in objects], **params)

    def _wrap(self, obj: Any) -> Any:
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):
            component = as_component(obj[1])
            self._titles[id(component)] = obj[0]
            return component
        return as_component(obj)

    def title_of(self, index: int) -> str:
        child = self.objects[index]
        return self._titles.get(id(child)) or child.name or f"{self._default_title} {index + 1}"

    _default_title: ClassVar[str] = "Tab"


class Tabs(_Titled):
    """Children as tabs; ``active`` is the index of the shown tab, synced with every browser."""

    active = param.Integer(default=0, bounds=(0, None))

    _synced: ClassVar[dict[str, str]] = {"objects": "tabs", "active": "active", "styles": "styles",
                                         "css_classes": "css_classes"}
    _from_browser: ClassVar[dict[str, str]] = {"active": "active"}

    def _panels(self, doc: Document, session: Session) -> list[TabPanel]:
        return [TabPanel(child=_ui(model), title=self.title_of(i)) for i, model in enumerate(self._children(doc, session))]

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkTabs(tabs=self._panels(doc, session), active=self.active, **self._layout_props())

    @param.depends("objects", watch=True)
    def _clamp_active(self) -> None:
        if self.objects and self.active >= len(self.objects):
            self.active = len(self.objects) - 1

    def _validate_browser(self, name: str, value: Any) -> None:
        if not isinstance(value, int) or not 0 <= value < len(self.objects):
            raise Refused(f"{value!r} is not a tab index (0..{len(self.objects) - 1})")

    def _update_view(self, view: View, names: list[str]) -> None:
        session, doc = view.session(), view.document()
        if session is None or doc is None:
            return
        super()._update_view(view, [n for n in names if n in ("styles", "css_classes")])
        model: Any = view.model
        if "objects" in names:
            # Surviving children keep their models; only their TabPanel wrappers are new.
            model.tabs = self._panels(doc, session)
        if "active" in names or "objects" in names:
            model.active = self.active


class Accordion(_Titled):
    """Children as collapsible sections under title buttons; ``active`` lists the open sections' indices.

    With ``toggle=True`` at most one section is open at a time.
    """

    active = param.List(default=[], item_type=int)
    toggle = param.Boolean(default=False)

    _default_title = "Section"

    def _extra_watched(self) -> list[str]:
        return ["active", "toggle"]

    def _section(self, index: int, model: Model, session: Session) -> UIElement:
        is_open = index in self.active
        header = BkButton(label=("▾ " if is_open else "▸ ") + self.title_of(index),
                          css_classes=["ks-accordion-header"], sizing_mode="stretch_width")
        header.on_event(ButtonClick, self._clicked(index, weakref.ref(session)))
        body = BkColumn(children=[_ui(model)], visible=is_open, css_classes=["ks-accordion-body"])
        return BkColumn(children=[header, body], css_classes=["ks-accordion-section"], sizing_mode="stretch_width")

    def _sections(self, doc: Document, session: Session) -> list[UIElement]:
        return [self._section(i, m, session) for i, m in enumerate(self._children(doc, session))]

    def _create_model(self, doc: Document, session: Session) -> Model:
        props = self._layout_props()
        props["css_classes"] = ["ks-accordion", *props["css_classes"]]
        return BkColumn(children=self._sections(doc, session), **props)

    def _clicked(self, index: int, session_ref: weakref.ReferenceType[Session]) -> Any:
        def on_click(event: Any) -> None:
            if index >= len(self.objects):
                refuse(session_ref(), type(self).__name__, "active", index, "no such section")
                return
            if index in self.active:
                self.active = [i for i in self.active if i != index]
            else:
                self.active = [index] if self.toggle else sorted([*self.active, index])
        return on_click

    def _update_view(self, view: View, names: list[str]) -> None:
        session, doc = view.session(), view.document()
        if session is None or doc is None:
            return
        super()._update_view(view, [n for n in names if n in ("styles", "css_classes")])
        model: Any = view.model
        if "objects" in names:
            model.children = self._sections(doc, session)
        elif "active" in names:
            for i, section in enumerate(model.children):
                header, body = section.children
                body.visible = i in self.active
                header.label = ("▾ " if body.visible else "▸ ") + self.title_of(i)



def _ui(model: Model) -> UIElement:
    if not isinstance(model, UIElement):
        raise TypeError(f"{model!r} cannot be shown in a layout: it is not a Bokeh UIElement")
    return model
