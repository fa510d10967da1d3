"""Indicators: read-only displays of a value."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.models import Div, Model

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
        return Div(text=self._html(), css_classes=["ks-indicator"])
