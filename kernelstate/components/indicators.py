"""Indicators: read-only displays of a value (the browser cannot change them)."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.models import Model
from bokeh.models.widgets import Div
from bokeh.models.widgets import Progress as BkProgress

from .base import Component

if TYPE_CHECKING:
    from ..session import Session


class Number(Component):
    """A big number with a title; ``format`` like ``'{value} °C'`` or ``'{value:.1f}%'``."""

    value = param.Number(default=0, allow_None=True)
    format = param.String(default="{value}")
    font_size = param.String(default="48px")

    _synced: ClassVar[dict[str, str]] = {"name": "text", "value": "text", "format": "text", "font_size": "text"}

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return {"text": self._html()}

    def _html(self) -> str:
        shown = "–" if self.value is None else self.format.format(value=self.value)
        return (
            f'<div class="ks-number"><div class="ks-number-title">{html.escape(self.name or "")}</div>'
            f'<div class="ks-number-value" style="font-size:{html.escape(self.font_size)}">{html.escape(shown)}</div></div>'
        )

    def _create_model(self, doc: Document, session: Session) -> Model:
        model: Model = Div(text=self._html(), css_classes=["ks-indicator"])
        return model


class Progress(Component):
    """A progress bar (Bokeh's Progress): ``value`` between ``min`` and ``max``; None shows an indeterminate bar."""

    value = param.Integer(default=None, allow_None=True)
    min = param.Integer(default=0)
    max = param.Integer(default=100)
    label_location: param.Selector[Any] = param.Selector(default="none", objects=["none", "inline"])
    orientation: param.Selector[Any] = param.Selector(default="horizontal", objects=["horizontal", "vertical"])
    reversed = param.Boolean(default=False)
    width = param.Integer(default=None, allow_None=True, bounds=(0, None))
    sizing_mode = param.String(default=None, allow_None=True)

    _synced: ClassVar[dict[str, str]] = {
        "name": "label", "value": "value", "min": "min", "max": "max", "label_location": "label_location",
        "orientation": "orientation", "reversed": "reversed", "width": "width", "sizing_mode": "sizing_mode",
    }

    @param.depends("value", "min", "max", watch=True, on_init=True)
    def _check_value(self) -> None:
        if self.value is not None and not self.min <= self.value <= self.max:
            raise ValueError(f"Progress value {self.value} is outside [min={self.min}, max={self.max}]; "
                             "use None for an indeterminate bar")

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        props = super()._model_props(names)
        if "value" in names:
            props["value"] = self.min if self.value is None else self.value
            props["mode"] = "indeterminate" if self.value is None else "determinate"
        if "name" in names:
            props["label"] = self.name or None
        return props

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkProgress(**self._model_props(list(self._synced)))
