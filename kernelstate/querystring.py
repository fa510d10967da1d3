"""How a parameter's value is written in a URL query, and read back from it.

Used by :mod:`kernelstate.location`. A value is a list of strings, the
values one query name has (``?tags=a&tags=b`` is ``["a", "b"]``):

- ``str`` as is; ``int`` in decimal; ``float`` as Python's shortest
  round-trip repr (``0.1``, ``5.0``; ``nan``/``inf`` are not read);
  ``bool`` as ``true``/``false`` (``1``/``0``, ``yes``/``no``, ``on``/``off``
  are read too); ``datetime.date``/``datetime``/``time`` in ISO 8601
  (``2024-05-01``, ``2024-05-01T09:30:00``, ``09:30:00``), naive or with an
  offset as the widget holds them;
- a list (``MultiChoice``, ``param.List``...) as one query value per item,
  the name repeated (``?tags=a&tags=b``); an empty list as one empty value
  (``?tags=``); a pair (``RangeSlider``...) likewise, exactly two values;
- a component with ``options`` (``Select``, ``MultiChoice``, radio and
  checkbox groups) writes option labels (a dict's keys, or ``str(option)``)
  and reads only labels of its current options;
- ``None`` as one empty value; an empty value reads as ``None`` where the
  parameter allows it (a string parameter reads it as ``""``);
- for a single value the last one counts (``?n=1&n=2`` is ``2``).

Reading raises :class:`QueryValueError`, whose message names the value and
says what was expected.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import param

__all__ = ["QueryCodec", "QueryValueError", "codec_for"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class QueryValueError(ValueError):
    """A query value that cannot be read as the parameter's type; the message says why."""


def _read_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise QueryValueError(f"{text!r} is not a boolean: use true or false")


def _read_int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise QueryValueError(f"{text!r} is not a whole number") from None


def _read_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise QueryValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise QueryValueError(f"{text!r} is not a finite number")
    return value


def _read_iso(kind: type[dt.date] | type[dt.time]) -> Callable[[str], Any]:
    label = {dt.datetime: "date and time (2024-05-01T09:30:00)", dt.date: "date (2024-05-01)",
             dt.time: "time (09:30:00)"}[kind]

    def read(text: str) -> Any:
        try:
            return kind.fromisoformat(text.strip())
        except ValueError:
            raise QueryValueError(f"{text!r} is not an ISO {label}") from None
    return read


def _write(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return "" if value is None else str(value)


_READERS: dict[str, Callable[[str], Any]] = {
    "str": str, "int": _read_int, "float": _read_float, "bool": _read_bool,
    "date": _read_iso(dt.date), "datetime": _read_iso(dt.datetime), "time": _read_iso(dt.time),
}


_KIND_OF_CLASS: dict[Any, str] = {dt.datetime: "datetime", dt.date: "date", dt.time: "time", str: "str", int: "int",
                                   float: "float", bool: "bool"}


def _kind_of_value(value: Any) -> str | None:
    for kind, cls in (("bool", bool), ("int", int), ("float", float), ("datetime", dt.datetime),
                      ("date", dt.date), ("time", dt.time), ("str", str)):
        if isinstance(value, cls):
            return kind
    return None


@dataclass(frozen=True)
class QueryCodec:
    """Writes and reads one parameter (see the module docstring for the rules)."""

    label: str                     # "IntSlider.value", for messages
    kind: str                      # a key of _READERS, or "option"
    shape: str = "one"             # "one", "list" or "tuple"
    length: int | None = None      # a tuple's length
    allow_none: bool = False
    options: Callable[[], list[tuple[str, Any]]] | None = None  # (label, value) pairs, read when used

    def encode(self, value: Any) -> list[str]:
        if value is None:
            return [""]
        if self.shape == "one":
            return [self._write_one(value)]
        return [self._write_one(v) for v in value] or [""]

    def decode(self, texts: list[str]) -> Any:
        if not texts:
            raise QueryValueError(f"no value for {self.label}")
        if self.shape == "one":
            text = texts[-1]
            if text == "" and self.allow_none and self.kind != "str":
                return None
            return self._read_one(text)
        if texts == [""]:
            if self.shape == "tuple":
                if self.allow_none:
                    return None
                raise QueryValueError(f"an empty value for {self.label}, which needs {self.length} values")
            return []
        items = [self._read_one(t) for t in texts]
        if self.shape == "tuple":
            if self.length is not None and len(items) != self.length:
                raise QueryValueError(f"{len(items)} values for {self.label}, which needs exactly {self.length} "
                                      f"(repeat the name: ?name=a&name=b)")
            return tuple(items)
        return items

    def _write_one(self, value: Any) -> str:
        if self.options is not None:
            for label, option in self.options():
                if option == value:
                    return label
        return _write(value)

    def _read_one(self, text: str) -> Any:
        if self.options is not None:
            pairs = self.options()
            for label, option in pairs:
                if label == text:
                    return option
            shown = ", ".join(repr(label) for label, _ in pairs[:10]) + (", ..." if len(pairs) > 10 else "")
            raise QueryValueError(f"{text!r} is not one of the options of {self.label} ({shown})")
        return _READERS[self.kind](text)


def _option_pairs(obj: param.Parameterized) -> Callable[[], list[tuple[str, Any]]]:
    def pairs() -> list[tuple[str, Any]]:
        options = getattr(obj, "options", None)
        if isinstance(options, dict):
            return [(str(k), v) for k, v in options.items()]
        return [(str(v), v) for v in options or []]
    return pairs


def _selector_pairs(parameter: param.Selector[Any]) -> Callable[[], list[tuple[str, Any]]]:
    def pairs() -> list[tuple[str, Any]]:
        return [(_write(v), v) for v in parameter.get_range().values()]
    return pairs


def codec_for(obj: param.Parameterized, name: str) -> QueryCodec:
    """The codec of parameter ``name`` of ``obj``; TypeError when its values cannot live in a URL."""
    parameter = obj.param[name]
    value = getattr(obj, name)
    label = f"{type(obj).__name__}.{name}"
    allow_none = bool(parameter.allow_None)
    if name == "value" and isinstance(getattr(obj, "options", None), (list, dict)):
        many = isinstance(parameter, param.List) or isinstance(value, list)
        return QueryCodec(label, "option", "list" if many else "one", None, allow_none, _option_pairs(obj))
    if isinstance(parameter, param.ListSelector):
        return QueryCodec(label, "option", "list", None, allow_none, _selector_pairs(parameter))
    if isinstance(parameter, param.Selector):
        return QueryCodec(label, "option", "one", None, allow_none, _selector_pairs(parameter))
    simple = [(param.Boolean, "bool"), (param.Integer, "int"), (param.CalendarDate, "date"), (param.Date, "datetime"),
              (param.Number, "float"), (param.String, "str"), (param.Color, "str")]
    for cls, simple_kind in simple:
        if isinstance(parameter, cls):
            if simple_kind == "datetime" and type(value) is dt.date:
                simple_kind = "date"
            return QueryCodec(label, simple_kind, "one", None, allow_none)
    if isinstance(parameter, (param.Tuple, param.List)):
        items = list(value if value is not None else parameter.default or ())
        item_type = getattr(parameter, "item_type", None)
        item_kind = _KIND_OF_CLASS.get(item_type) if isinstance(item_type, type) else None
        if item_kind is None and items:
            item_kind = _kind_of_value(items[0])
        if item_kind is None and isinstance(parameter, param.List):
            item_kind = "str"
        if item_kind is None:
            raise TypeError(f"cannot sync {label} with the URL: its items' type is unknown (its value is {value!r}); "
                            "give it a value or a default with items (str, int, float, bool, dates)")
        if isinstance(parameter, param.Tuple):
            return QueryCodec(label, item_kind, "tuple", parameter.length, allow_none)
        return QueryCodec(label, item_kind, "list", None, allow_none)
    class_ = getattr(parameter, "class_", None)
    kind = _kind_of_value(value)
    if kind is None and isinstance(class_, type):
        kind = _KIND_OF_CLASS.get(class_)
    if kind is None:
        raise TypeError(f"cannot sync {label} with the URL: a {type(parameter).__name__} parameter holding "
                        f"{type(value).__name__} values; location sync writes str, int, float, bool, dates and "
                        "times, lists and pairs of those, and options")
    return QueryCodec(label, kind, "one", None, allow_none)
