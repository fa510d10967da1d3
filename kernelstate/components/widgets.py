"""Widgets: each renders the stock Bokeh widget and syncs its value both ways."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.events import ButtonClick
from bokeh.models import Button as BkButton
from bokeh.models import Model, Select as BkSelect, Slider, TextInput as BkTextInput, Toggle as BkToggle

from .base import Component

if TYPE_CHECKING:
    from ..session import Session


class Widget(Component):
    disabled = param.Boolean(default=False)
    width = param.Integer(default=None, allow_None=True)
    sizing_mode = param.String(default=None, allow_None=True)

    _base_synced: ClassVar[dict[str, str]] = {"disabled": "disabled"}

    def _common(self) -> dict[str, Any]:
        props: dict[str, Any] = {"disabled": self.disabled, "sizing_mode": self.sizing_mode}
        if self.width is not None:
            props["width"] = self.width
        return props


class Button(Widget):
    """A push button; ``clicks`` counts clicks and ``on_click(cb)`` runs ``cb(event)`` per click."""

    clicks = param.Integer(default=0)
    button_type = param.Selector(default="default", objects=["default", "primary", "success", "warning", "danger", "light"])

    _synced: ClassVar[dict[str, str]] = {"name": "label", "button_type": "button_type", "disabled": "disabled"}

    def __init__(self, **params: Any) -> None:
        params.setdefault("name", "Button")
        super().__init__(**params)

    def _create_model(self, doc: Document, session: Session) -> Model:
        model = BkButton(label=self.name, button_type=self.button_type, **self._common())
        model.on_event(ButtonClick, self._clicked)
        return model

    def _clicked(self, event: ButtonClick) -> None:
        self.clicks += 1

    def on_click(self, callback: Callable[[Any], Any]) -> param.parameterized.Watcher:
        """Run ``callback(event)`` once per click; returns the watcher (``.param.unwatch`` it)."""
        return self.param.watch(callback, "clicks", onlychanged=False)


class _Slider(Widget):
    start = param.Number(default=0)
    end = param.Number(default=1)
    step = param.Number(default=0.1)
    value = param.Number(default=0)

    _synced: ClassVar[dict[str, str]] = {
        "name": "title", "start": "start", "end": "end", "step": "step", "value": "value", "disabled": "disabled",
    }
    _from_browser: ClassVar[dict[str, str]] = {"value": "value"}

    def _create_model(self, doc: Document, session: Session) -> Model:
        return Slider(title=self.name, start=self.start, end=self.end, step=self.step, value=self.value, **self._common())


class IntSlider(_Slider):
    """An integer slider."""

    start = param.Integer(default=0)
    end = param.Integer(default=10)
    step = param.Integer(default=1)
    value = param.Integer(default=0)

    def _from_model(self, prop: str, value: Any) -> Any:
        return int(round(value))


class FloatSlider(_Slider):
    """A float slider."""

    start = param.Number(default=0.0)
    end = param.Number(default=1.0)
    step = param.Number(default=0.1)
    value = param.Number(default=0.0)

    def _from_model(self, prop: str, value: Any) -> Any:
        return float(value)


class TextInput(Widget):
    """A one-line text input; ``value`` updates when the user commits (Enter or blur)."""

    value = param.String(default="")
    placeholder = param.String(default="")

    _synced: ClassVar[dict[str, str]] = {"name": "title", "value": "value", "placeholder": "placeholder", "disabled": "disabled"}
    _from_browser: ClassVar[dict[str, str]] = {"value": "value"}

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkTextInput(title=self.name, value=self.value, placeholder=self.placeholder, **self._common())


class Select(Widget):
    """Pick one of ``options`` (a list, or a dict of label -> value)."""

    options = param.ClassSelector(default=[], class_=(list, dict))
    value = param.Parameter(default=None)

    _synced: ClassVar[dict[str, str]] = {"name": "title", "options": "options", "value": "value", "disabled": "disabled"}
    _from_browser: ClassVar[dict[str, str]] = {"value": "value"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.value is None and self._pairs():
            self.value = self._pairs()[0][1]

    def _pairs(self) -> list[tuple[str, Any]]:
        if isinstance(self.options, dict):
            return [(str(k), v) for k, v in self.options.items()]
        return [(str(v), v) for v in self.options]

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "options":
            return [label for label, _ in self._pairs()]
        if name == "value":
            for label, v in self._pairs():
                if v == value:
                    return label
            return ""
        return value

    def _from_model(self, prop: str, value: Any) -> Any:
        for label, v in self._pairs():
            if label == value:
                return v
        return None

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkSelect(title=self.name, options=self._to_model("options", self.options),
                        value=self._to_model("value", self.value), **self._common())


class Toggle(Widget):
    """A two-state button; ``value`` is True while pressed."""

    value = param.Boolean(default=False)
    button_type = param.Selector(default="default", objects=["default", "primary", "success", "warning", "danger", "light"])

    _synced: ClassVar[dict[str, str]] = {"name": "label", "value": "active", "button_type": "button_type", "disabled": "disabled"}
    _from_browser: ClassVar[dict[str, str]] = {"active": "value"}

    def __init__(self, **params: Any) -> None:
        params.setdefault("name", "Toggle")
        super().__init__(**params)

    def _create_model(self, doc: Document, session: Session) -> Model:
        return BkToggle(label=self.name, active=self.value, button_type=self.button_type, **self._common())
