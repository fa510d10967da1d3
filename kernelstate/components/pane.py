"""Panes: Markdown, Str and HTML text, each with ``.object``; all render as a Bokeh Div."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, ClassVar

import nh3
import param
from bokeh.document import Document
from bokeh.models import Div, Model
from markdown_it import MarkdownIt

from .base import Component

if TYPE_CHECKING:
    from ..session import Session

_md = MarkdownIt("commonmark", {"html": True}).enable("table")
# nh3's defaults plus ``class`` (code blocks carry ``language-*``) and table alignment.
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", *nh3.ALLOWED_ATTRIBUTES.get("*", set())},
    "td": {"style", *nh3.ALLOWED_ATTRIBUTES.get("td", set())},
    "th": {"style", *nh3.ALLOWED_ATTRIBUTES.get("th", set())},
}


class _TextPane(Component):
    object = param.Parameter(default="", doc="The content shown by the pane.")
    sizing_mode = param.String(default=None, allow_None=True)

    _synced: ClassVar[dict[str, str]] = {"object": "text"}

    def __init__(self, object: Any = "", **params: Any) -> None:
        super().__init__(object=object, **params)

    def _create_model(self, doc: Document, session: Session) -> Model:
        return Div(text=self._to_model("object", self.object), css_classes=[self._css_class],
                   sizing_mode=self.sizing_mode)

    _css_class = "ks-pane"


class Markdown(_TextPane):
    """Markdown text (CommonMark with tables), rendered to HTML on the server.

    Raw HTML inside the Markdown is sanitized by default (nh3: scripts, event
    handler attributes such as ``onerror``, ``javascript:`` links and the like
    are removed), so an app that shows user input as Markdown does not run the
    user's scripts. ``sanitize=False`` keeps the HTML as written: only for
    trusted text.
    """

    sanitize = param.Boolean(default=True, doc="Remove scripts and event handlers from embedded HTML (nh3).")

    _synced: ClassVar[dict[str, str]] = {"object": "text", "sanitize": "text"}
    _css_class = "ks-markdown"

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return {"text": self._to_model("object", self.object)}

    def _to_model(self, name: str, value: Any) -> Any:
        rendered = _md.render("" if value is None else str(value))
        if self.sanitize:
            rendered = nh3.clean(rendered, attributes=_ALLOWED_ATTRIBUTES, filter_style_properties={"text-align"})
        return rendered


class Str(_TextPane):
    """Any object's ``str()``, shown preformatted and HTML-escaped."""

    _css_class = "ks-str"

    def _to_model(self, name: str, value: Any) -> Any:
        return f"<pre>{html.escape(str(value))}</pre>"


class HTML(_TextPane):
    """Raw HTML."""

    _css_class = "ks-html"

    def _to_model(self, name: str, value: Any) -> Any:
        return "" if value is None else str(value)


class BokehModel(Component):
    """Show a ready-made Bokeh model. A model belongs to one Document, so one view only."""

    object = param.Parameter(default=None)

    def __init__(self, object: Model, **params: Any) -> None:
        super().__init__(object=object, **params)

    def _create_model(self, doc: Document, session: Session) -> Model:
        if self.object.document is not None and self.object.document is not doc:
            raise ValueError(f"Bokeh model {self.object!r} is already in another Document; wrap a fresh model per session")
        return self.object
