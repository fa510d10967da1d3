"""Behaviour shared by kinds of generated widgets: text, toggles, choices, buttons, menus, files, colors.

Each class here holds the conversions between a parameter and its Bokeh
property (``_to_model`` / ``_from_model``) and the browser-side checks
(``_validate_browser``, raising :class:`Refused`) for one kind of widget.
The concrete widget classes (``TextInput``, ``MultiChoice``, ``MenuButton``...)
are generated from the table in ``widget_table.py`` on top of these.
"""
from __future__ import annotations

import base64
import binascii
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.events import ButtonClick, Event, MenuItemClick
from bokeh.model import Model

from .base import ON_EVENT_SIGNATURE
from .validation import Refused, refuse
from .widgets import Widget

if TYPE_CHECKING:
    from ..session import Session


class ValueWidget(Widget):
    """A widget whose ``value`` is one Bokeh property the browser sets (text, toggles, colors)."""

    _value_prop: ClassVar[str] = "value"

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        """(parameter -> property pushed to the browser, property -> parameter set by the browser)."""
        return {"value": cls._value_prop}, {cls._value_prop: "value"}


class TextValue(ValueWidget):
    """Text inputs; ``value`` is committed on Enter/blur, ``value_input`` on every key."""

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {"value": "value", "value_input": "value_input"}, {"value": "value", "value_input": "value_input"}

    def _validate_browser(self, name: str, value: Any) -> None:
        max_length = getattr(self, "max_length", None)
        if max_length is not None and isinstance(value, str) and len(value) > max_length:
            raise Refused(f"{len(value)} characters is over max_length={max_length}")
        if name == "value" and getattr(self, "restrict", False) and value and value not in getattr(self, "completions", []):
            raise Refused(f"{value!r} is not one of the completions and restrict=True")


class ToggleValue(ValueWidget):
    """Two-state widgets (Checkbox, Switch, Toggle): ``value`` is Bokeh's ``active``."""

    _value_prop = "active"
    _title_prop = "label"


class ColorValue(ValueWidget):
    """ColorPicker: ``value`` is a ``#rrggbb`` string, Bokeh's ``color``."""

    _value_prop = "color"

    def _validate_browser(self, name: str, value: Any) -> None:
        if not (isinstance(value, str) and len(value) in (7, 9) and value.startswith("#")
                and all(c in "0123456789abcdefABCDEF" for c in value[1:])):
            raise Refused(f"{value!r} is not a #rrggbb color")


class Choice(Widget):
    """Pick from ``options`` (a list of values, or a dict of label -> value); the browser sees labels.

    ``multiple`` classes hold a list of values; the others one value.
    """

    options = param.ClassSelector(default=[], class_=(list, dict), doc="Values, or a dict of label -> value.")
    _multiple: ClassVar[bool] = False

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {"value": "value", "options": "options"}, {"value": "value"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self._multiple and getattr(self, "value", None) is None and self._pairs():
            self.value = self._pairs()[0][1]

    def _pairs(self) -> list[tuple[str, Any]]:
        if isinstance(self.options, dict):
            return [(str(k), v) for k, v in self.options.items()]
        return [(str(v), v) for v in self.options]

    def _label(self, value: Any) -> str | None:
        for label, v in self._pairs():
            if v == value:
                return label
        return None

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "options":
            return [label for label, _ in self._pairs()]
        if name == "value":
            if self._multiple:
                return [label for label in map(self._label, value or []) if label is not None]
            return self._label(value) or ""
        return value

    def _value_for(self, label: Any) -> Any:
        for lbl, v in self._pairs():
            if lbl == label:
                return v
        raise Refused(f"{label!r} is not one of the options")

    def _from_model(self, prop: str, value: Any) -> Any:
        if self._multiple:
            if not isinstance(value, list):
                raise Refused("expected a list of option labels")
            return [self._value_for(label) for label in value]
        return self._value_for(value)

    def _validate_browser(self, name: str, value: Any) -> None:
        max_items = getattr(self, "max_items", None)
        if self._multiple and max_items is not None and len(value) > max_items:
            raise Refused(f"{len(value)} items is over max_items={max_items}")


class PaletteChoice(ValueWidget):
    """PaletteSelect: ``value`` is the name of one of ``items`` ((name, colors) pairs)."""

    def _validate_browser(self, name: str, value: Any) -> None:
        if value not in [item[0] for item in getattr(self, "items", [])]:
            raise Refused(f"{value!r} is not the name of one of the palettes in items")


class Group(Widget):
    """Checkbox/radio groups: the browser sees ``options`` as labels and sends indices (``active``)."""

    options = param.ClassSelector(default=[], class_=(list, dict), doc="Values, or a dict of label -> value.")
    _multiple: ClassVar[bool] = False
    _title_prop = None

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {"value": "active", "options": "labels"}, {"active": "value"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self._multiple and getattr(self, "value", None) is None and self._values():
            self.value = self._values()[0]

    def _values(self) -> list[Any]:
        return list(self.options.values()) if isinstance(self.options, dict) else list(self.options)

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "options":
            return [str(k) for k in self.options] if isinstance(self.options, dict) else [str(v) for v in self.options]
        if name == "value":
            values = self._values()
            if self._multiple:
                return [values.index(v) for v in value or [] if v in values]
            return values.index(value) if value in values else None
        return value

    def _from_model(self, prop: str, value: Any) -> Any:
        values = self._values()

        def pick(index: Any) -> Any:
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(values):
                raise Refused(f"{index!r} is not an option index (0..{len(values) - 1})")
            return values[index]

        if self._multiple:
            if not isinstance(value, list):
                raise Refused("expected a list of option indices")
            return [pick(i) for i in value]
        return None if value is None else pick(value)


class ClickButton(Widget):
    """A push button: ``clicks`` counts clicks, ``on_click(cb)`` runs ``cb(event)`` per accepted click."""

    clicks = param.Integer(default=0, bounds=(0, None))
    _title_prop = "label"

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {}

    def _attach_events(self, model: Model, session_ref: weakref.ReferenceType[Session]) -> None:
        def clicked(event: Event) -> None:
            if self._event_allowed(session_ref, "clicks"):
                self.clicks += 1
        clicked.__signature__ = ON_EVENT_SIGNATURE  # type: ignore[attr-defined]  # see base.py
        model.on_event(ButtonClick, clicked)

    def on_click(self, callback: Callable[[Any], Any]) -> param.parameterized.Watcher:
        """Run ``callback(event)`` once per click; returns the watcher (``.param.unwatch`` it)."""
        return self.param.watch(callback, "clicks", onlychanged=False)


class Menu(Widget):
    """A dropdown button: ``items`` are labels or (label, value) pairs; ``clicked`` is the last value chosen."""

    items = param.List(default=[], doc="Menu entries: labels, or (label, value) pairs; None draws a separator.")
    clicked = param.Parameter(default=None, doc="The value of the item chosen last.")
    _title_prop = "label"

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {"items": "menu"}, {}

    def _pairs(self) -> list[tuple[str, Any]]:
        return [(i, i) if isinstance(i, str) else (str(i[0]), i[1]) for i in self.items if i is not None]

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "items":
            return [None if i is None else (i if isinstance(i, str) else (str(i[0]), str(i[1]))) for i in value]
        return value

    def _attach_events(self, model: Model, session_ref: weakref.ReferenceType[Session]) -> None:
        def chosen(event: Event) -> None:
            item = getattr(event, "item", None)
            if not self._event_allowed(session_ref, "clicked", item):
                return
            for label, value in self._pairs():
                if item in (label, str(value)):
                    if value != self.clicked:
                        self.clicked = value
                    else:  # the same item again: still one event per click
                        self.param.trigger("clicked")
                    return
            refuse(session_ref(), type(self).__name__, "clicked", item, "not one of the menu items")
        model.on_event(MenuItemClick, chosen)

    def on_click(self, callback: Callable[[Any], Any]) -> param.parameterized.Watcher:
        """Run ``callback(event)`` once per chosen item (``event.new`` is its value)."""
        return self.param.watch(callback, "clicked", onlychanged=False)


class Upload(Widget):
    """FileInput: the browser sends base64 contents; ``value`` is bytes (a list with ``multiple``)."""

    value = param.Parameter(default=None, doc="The file's bytes (list of bytes with multiple=True).")
    filename = param.Parameter(default=None, doc="The file's name (list with multiple=True).")
    mime_type = param.Parameter(default=None, doc="The file's MIME type (list with multiple=True).")
    max_bytes = param.Integer(default=50 * 1024 * 1024, bounds=(0, None), doc="Larger uploads are refused.")

    _not_restored: ClassVar[frozenset[str]] = frozenset({"value", "filename", "mime_type"})  # uploads are not replayed

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"value": "value", "filename": "filename", "mime_type": "mime_type"}

    def _from_model(self, prop: str, value: Any) -> Any:
        many, multiple = isinstance(value, list), bool(getattr(self, "multiple", False))
        if many != multiple:
            raise Refused(f"expected {'a list' if multiple else 'one file'} (multiple={multiple})")
        items = value if many else [value]
        if not all(isinstance(v, str) for v in items):
            raise Refused("expected strings")
        if prop == "value":
            try:
                decoded = [base64.b64decode(v, validate=True) for v in items]
            except (binascii.Error, ValueError) as exc:
                raise Refused(f"file contents are not base64: {exc}") from None
            if sum(map(len, decoded)) > self.max_bytes:
                raise Refused(f"upload of {sum(map(len, decoded))} bytes is over max_bytes={self.max_bytes}")
            return decoded if many else decoded[0]
        return list(items) if many else items[0]

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "value" and value is not None:
            return [base64.b64encode(v).decode() for v in value] if isinstance(value, list) else base64.b64encode(value).decode()
        if name in ("value", "filename", "mime_type") and value is None:
            return ""
        return value
