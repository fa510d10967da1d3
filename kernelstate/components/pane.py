"""Panes: Markdown, Str, HTML, JSON, Alert and Image, each with ``.object``; all render as a Bokeh Div."""
from __future__ import annotations

import base64
import functools
import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import nh3
import param
from bokeh.document import Document
from bokeh.models import Model
from bokeh.models.widgets import Div
from markdown_it import MarkdownIt

from .base import Component
from .model_defaults import new_model

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
        model: Model = new_model(Div, text=self._to_model("object", self.object), css_classes=[self._css_class],
                                 sizing_mode=self.sizing_mode)
        return model

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
        text = "" if value is None else str(value)
        if len(text) <= _CACHED_MARKDOWN_CHARS:  # the same text in every session of an app: rendered once
            return _cached_markdown(text, self.sanitize)
        return _render_markdown(text, self.sanitize)


#: Markdown texts up to this size are kept rendered (at most 256 of them).
_CACHED_MARKDOWN_CHARS = 8192


def _render_markdown(text: str, sanitize: bool) -> str:
    rendered: str = _md.render(text)
    if sanitize:
        rendered = nh3.clean(rendered, attributes=_ALLOWED_ATTRIBUTES, filter_style_properties={"text-align"})
    return rendered


_cached_markdown = functools.lru_cache(maxsize=256)(_render_markdown)


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
        model: Model = self.object
        return model


class JSON(_TextPane):
    """A JSON-serializable object (or a JSON string), pretty-printed and HTML-escaped."""

    depth = param.Integer(default=None, allow_None=True, bounds=(0, None),
                          doc="Show nesting up to this depth; deeper values are elided as '…'.")
    _synced: ClassVar[dict[str, str]] = {"object": "text", "depth": "text"}
    _css_class = "ks-json"

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return {"text": self._to_model("object", self.object)}

    def _to_model(self, name: str, value: Any) -> Any:
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"ks.pane.JSON got a string that is not JSON: {value[:80]!r}") from None
        shown = json.dumps(_elide(value, self.depth), indent=2, default=str, ensure_ascii=False)
        return f"<pre>{html.escape(shown)}</pre>"


def _elide(value: Any, depth: int | None) -> Any:
    if depth is None:
        return value
    if isinstance(value, dict):
        return "…" if depth == 0 else {k: _elide(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return "…" if depth == 0 else [_elide(v, depth - 1) for v in value]
    return value


_ALERT_COLORS = {
    "primary": ("#cfe2ff", "#084298"), "secondary": ("#e2e3e5", "#41464b"), "success": ("#d1e7dd", "#0f5132"),
    "danger": ("#f8d7da", "#842029"), "warning": ("#fff3cd", "#664d03"), "info": ("#cff4fc", "#055160"),
    "light": ("#fefefe", "#636464"), "dark": ("#d3d3d4", "#141619"),
}


class Alert(Markdown):
    """A Markdown message in a colored box (``alert_type`` as in Bootstrap: primary, success, warning, danger...)."""

    alert_type: param.Selector[Any] = param.Selector(default="primary", objects=list(_ALERT_COLORS))
    _synced: ClassVar[dict[str, str]] = {"object": "text", "sanitize": "text", "alert_type": "styles"}
    _css_class = "ks-alert"

    def _styles(self) -> dict[str, str]:
        background, color = _ALERT_COLORS[self.alert_type]
        return {"background-color": background, "color": color, "border": f"1px solid {color}33",
                "border-radius": "6px", "padding": "0 1em"}

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return {**super()._model_props(names), "styles": self._styles()}

    def _create_model(self, doc: Document, session: Session) -> Model:
        model = super()._create_model(doc, session)
        model.update(styles=self._styles(), css_classes=["ks-alert", f"ks-alert-{self.alert_type}"])
        return model


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


class Image(Component):
    """A PNG, JPEG, GIF or SVG image from bytes, a file path, or SVG text, embedded as a data URL."""

    object = param.Parameter(default=None, doc="Image bytes, a path to an image file, or SVG markup.")
    width = param.Integer(default=None, allow_None=True, bounds=(0, None))
    height = param.Integer(default=None, allow_None=True, bounds=(0, None))
    alt_text = param.String(default="")
    sizing_mode = param.String(default=None, allow_None=True)

    _synced: ClassVar[dict[str, str]] = {"object": "text", "width": "text", "height": "text", "alt_text": "text"}

    def __init__(self, object: Any = None, **params: Any) -> None:
        super().__init__(object=object, **params)

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return {"text": self._html()}

    def _html(self) -> str:
        if self.object is None:
            return ""
        return self._img(*image_data(self.object))

    def _img(self, data: bytes, mime: str) -> str:
        size = "".join(f' {k}="{v}"' for k, v in (("width", self.width), ("height", self.height)) if v is not None)
        src = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        return f'<img src="{src}" alt="{html.escape(self.alt_text, quote=True)}"{size} style="max-width:100%">'

    def _create_model(self, doc: Document, session: Session) -> Model:
        model: Model = Div(text=self._html(), css_classes=["ks-image"], sizing_mode=cast(Any, self.sizing_mode))
        return model


def image_data(obj: Any) -> tuple[bytes, str]:
    """(bytes, MIME type) of an image given as bytes, a path, or SVG markup."""
    if isinstance(obj, str) and obj.lstrip().startswith(("<svg", "<?xml")):
        return obj.encode(), "image/svg+xml"
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"ks.pane.Image: no image file at {str(path)!r}; pass bytes, a path or SVG markup")
        obj = path.read_bytes()
    if not isinstance(obj, (bytes, bytearray)):
        raise TypeError(f"ks.pane.Image needs bytes, a path or SVG markup; got {type(obj).__name__}")
    data = bytes(obj)
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return data, mime
    if data.lstrip()[:5] in (b"<svg ", b"<?xml") or data.lstrip().startswith(b"<svg"):
        return data, "image/svg+xml"
    raise ValueError(f"ks.pane.Image: {data[:8]!r}... is not a PNG, JPEG, GIF or SVG image")


class Matplotlib(Image):
    """A Matplotlib ``Figure`` rendered to PNG on the server (needs the ``matplotlib`` extra).

    Build figures with ``matplotlib.figure.Figure()`` rather than ``pyplot``: pyplot keeps
    every figure in a process-wide registry, which sessions would share. After changing a
    figure, call ``pane.param.trigger("object")`` (or assign a new figure) to re-render it.
    """

    dpi = param.Integer(default=96, bounds=(1, None))
    _synced: ClassVar[dict[str, str]] = {**Image._synced, "dpi": "text"}

    def _html(self) -> str:
        if self.object is None:
            return ""
        from io import BytesIO

        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
        except ImportError:
            raise ImportError("ks.pane.Matplotlib needs matplotlib: pip install 'kernelstate[matplotlib]'") from None
        buffer = BytesIO()
        FigureCanvasAgg(self.object).print_figure(buffer, format="png", dpi=self.dpi)
        return self._img(buffer.getvalue(), "image/png")
