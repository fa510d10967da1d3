"""Layouts: Column, Row, FlexBox, Card and GridBox, holding other components in ``objects``; Spacer, Divider.

Plain strings inside a layout become Markdown panes. ``objects`` is edited as
a list (assign a new list, ``append``/``extend``/``insert``/``pop``/``remove``/
``clear``, ``layout[i] = x``, ``layout[1:3] = [...]``, ``del layout[0]``): every
view is updated with one change of its children, and children that stay keep
their Bokeh models (nothing is rebuilt; only new children are sent).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, cast

import param
from bokeh.document import Document
from bokeh.events import ButtonClick
from bokeh.models import Column as BkColumn
from bokeh.models import GridBox as BkGridBox
from bokeh.models import Model
from bokeh.models import Row as BkRow
from bokeh.models import Spacer as BkSpacer
from bokeh.models.ui import UIElement
from bokeh.models.widgets import Button as BkButton
from bokeh.models.widgets import Div

from .base import Component, View, as_component
from .model_defaults import new_model

if TYPE_CHECKING:
    from ..session import Session


class ListLike(Component):
    objects = param.List(default=[], doc="The child components, in order.")
    sizing_mode = param.String(default=None, allow_None=True)
    css_classes = param.List(default=[])
    styles = param.Dict(default={})

    _synced: ClassVar[dict[str, str]] = {"objects": "children", "styles": "styles", "css_classes": "css_classes"}

    def __init__(self, *objects: Any, **params: Any) -> None:
        if objects and "objects" in params:
            raise ValueError("pass children either positionally or as objects=, not both")
        params["objects"] = [as_component(o) for o in (objects or params.get("objects", []))]
        super().__init__(**params)

    @param.depends("objects", watch=True)
    def _wrap_objects(self) -> None:
        wrapped = [self._wrap(o) for o in self.objects]
        if any(a is not b for a, b in zip(wrapped, self.objects, strict=True)):
            self.objects = wrapped

    def _children(self, doc: Document, session: Session) -> list[UIElement]:
        # Every component renders a layoutable Bokeh element (a UIElement).
        return [cast(UIElement, child.get_model(doc, session)) for child in self.objects]

    def _update_view(self, view: View, names: list[str]) -> None:
        session, doc = view.session(), view.document()
        if session is None or doc is None:
            return
        props: dict[str, Any] = {}
        if "objects" in names:
            props["children"] = self._children(doc, session)
        if "styles" in names:
            props["styles"] = dict(self.styles)
        if "css_classes" in names:
            props["css_classes"] = list(self.css_classes)
        self._container(view.model).update(**props)

    def _container(self, model: Model) -> Model:
        return model

    def _layout_props(self) -> dict[str, Any]:
        return {"sizing_mode": self.sizing_mode, "styles": dict(self.styles), "css_classes": list(self.css_classes)}

    # list-like helpers; each assigns a new list so watchers see the change
    def _wrap(self, obj: Any) -> Any:
        return as_component(obj)

    def append(self, obj: Any) -> None:
        self.objects = [*self.objects, self._wrap(obj)]

    def extend(self, objs: list[Any]) -> None:
        self.objects = [*self.objects, *(self._wrap(o) for o in objs)]

    def insert(self, index: int, obj: Any) -> None:
        objs = list(self.objects)
        objs.insert(index, self._wrap(obj))
        self.objects = objs

    def pop(self, index: int = -1) -> Component:
        objs = list(self.objects)
        obj: Component = objs.pop(index)
        self.objects = objs
        return obj

    def remove(self, obj: Any) -> None:
        self.objects = [o for o in self.objects if o is not obj]

    def clear(self) -> None:
        self.objects = []

    def __setitem__(self, index: int | slice, value: Any) -> None:
        objs = list(self.objects)
        if isinstance(index, slice):
            objs[index] = [self._wrap(o) for o in value]
        else:
            objs[index] = self._wrap(value)
        self.objects = objs

    def __delitem__(self, index: int | slice) -> None:
        objs = list(self.objects)
        del objs[index]
        self.objects = objs

    def __contains__(self, obj: object) -> bool:
        return any(o is obj for o in self.objects)

    def __getitem__(self, index: int) -> Component:
        item: Component = self.objects[index]
        return item

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[Component]:
        return iter(self.objects)


class Column(ListLike):
    """Children stacked vertically."""

    def _create_model(self, doc: Document, session: Session) -> Model:
        return new_model(BkColumn, children=self._children(doc, session), **self._layout_props())


class Row(ListLike):
    """Children side by side."""

    def _create_model(self, doc: Document, session: Session) -> Model:
        return new_model(BkRow, children=self._children(doc, session), **self._layout_props())


class FlexBox(ListLike):
    """Children in a wrapping CSS flexbox (``flex_direction`` 'row' or 'column')."""

    flex_direction: Any = param.Selector(default="row", objects=["row", "column"])
    flex_wrap: Any = param.Selector(default="wrap", objects=["wrap", "nowrap"])
    gap = param.String(default="10px")

    def _flex_styles(self) -> dict[str, str | None]:
        return {"flex-wrap": self.flex_wrap, "gap": self.gap, **self.styles}

    def _extra_watched(self) -> list[str]:
        return ["flex_direction", "flex_wrap", "gap"]

    def _create_model(self, doc: Document, session: Session) -> Model:
        cls = BkRow if self.flex_direction == "row" else BkColumn
        props = self._layout_props()
        props["styles"] = self._flex_styles()
        return new_model(cls, children=self._children(doc, session), **props)

    def _update_view(self, view: View, names: list[str]) -> None:
        super()._update_view(view, names)
        if {"flex_wrap", "gap", "styles"} & set(names):
            cast(UIElement, view.model).styles = dict(self._flex_styles())


class Card(ListLike):
    """A titled box whose body can be collapsed by clicking its header button."""

    title = param.String(default="")
    collapsible = param.Boolean(default=True)
    collapsed = param.Boolean(default=False)
    hide_header = param.Boolean(default=False)

    def _extra_watched(self) -> list[str]:
        return ["title", "collapsible", "collapsed", "hide_header"]

    def _header_text(self) -> str:
        import html

        return f'<span class="ks-card-title">{html.escape(self.title or self.name or "")}</span>'

    def _create_model(self, doc: Document, session: Session) -> Model:
        toggle = BkButton(label="▸" if self.collapsed else "▾", css_classes=["ks-card-toggle"],
                          visible=self.collapsible, width=32)
        toggle.on_event(ButtonClick, self._toggle)  # type: ignore[arg-type]  # bokeh types it by the base Event
        header = BkRow(children=[toggle, Div(text=self._header_text(), css_classes=["ks-card-header-title"])],
                       css_classes=["ks-card-header"], visible=not self.hide_header)
        body = BkColumn(children=self._children(doc, session), css_classes=["ks-card-body"], visible=not self.collapsed)
        props = self._layout_props()
        props["css_classes"] = ["ks-card", *props["css_classes"]]
        return BkColumn(children=[header, body], **props)

    def _toggle(self, event: ButtonClick) -> None:
        self.collapsed = not self.collapsed

    def _container(self, model: Model) -> Model:
        return cast(Model, cast(BkColumn, model).children[1])

    def _update_view(self, view: View, names: list[str]) -> None:
        super()._update_view(view, [n for n in names if n == "objects"])
        header, body = cast(BkColumn, view.model).children
        toggle_element, title_element = cast(BkRow, header).children
        toggle, title = cast(BkButton, toggle_element), cast(Div, title_element)
        if "collapsed" in names:
            body.visible = not self.collapsed
            toggle.label = "▸" if self.collapsed else "▾"
        if "collapsible" in names:
            toggle.visible = self.collapsible
        if "hide_header" in names:
            header.visible = not self.hide_header
        if "title" in names:
            title.text = self._header_text()


class GridBox(ListLike):
    """Children in a grid, filled row by row, ``ncols`` per row."""

    ncols = param.Integer(default=2, bounds=(1, None))

    def _extra_watched(self) -> list[str]:
        return ["ncols"]

    def _cells(self, doc: Document, session: Session) -> list[Any]:
        return [(model, i // self.ncols, i % self.ncols) for i, model in enumerate(self._children(doc, session))]

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkGridBox(children=self._cells(doc, session), **self._layout_props())

    def _update_view(self, view: View, names: list[str]) -> None:
        session, doc = view.session(), view.document()
        if session is None or doc is None:
            return
        super()._update_view(view, [n for n in names if n != "objects"])
        if "objects" in names or "ncols" in names:
            model: Any = view.model
            model.children = self._cells(doc, session)


class Spacer(Component):
    """Empty space: fixed ``width``/``height``, or stretching with ``sizing_mode``."""

    width = param.Integer(default=None, allow_None=True, bounds=(0, None))
    height = param.Integer(default=None, allow_None=True, bounds=(0, None))
    sizing_mode = param.String(default=None, allow_None=True)

    _synced: ClassVar[dict[str, str]] = {"width": "width", "height": "height", "sizing_mode": "sizing_mode"}

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkSpacer(**self._model_props(list(self._synced)))


class Divider(Component):
    """A horizontal rule across the available width."""

    def _create_model(self, doc: Document, session: Session) -> Model:
        divider: Model = Div(text="<hr>", css_classes=["ks-divider"], sizing_mode="stretch_width")
        return divider
