"""Behaviour of the bounded widgets: sliders, numeric inputs and date/time pickers.

A bounded widget holds a scalar, a (low, high) pair or a list, each item
between the parameters ``start`` and ``end`` (either may be None: unbounded).
A browser value is converted item by item and refused (see
``validation.py``) if it is of the wrong kind, out of bounds, or a pair out
of order.

Dates and times: date widgets hold ``datetime.date``, datetime widgets hold
**naive** ``datetime.datetime`` and time pickers ``datetime.time``. Bokeh
sends datetimes as milliseconds since the epoch, which kernelstate reads as
UTC (Bokeh itself sends naive datetimes as if they were UTC), so a value
round-trips unchanged; an *aware* datetime set from Python is converted to
UTC and made naive first.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, ClassVar

import param

from .inputs import Choice
from .validation import Refused
from .widgets import Widget

_EPOCH = dt.datetime(1970, 1, 1)


def as_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refused(f"{value!r} is not a finite number")
    return float(value)


def as_int(value: Any) -> int:
    return round(as_number(value))


def as_exact_int(value: Any) -> int:
    number = as_number(value)
    if number != int(number):
        raise Refused(f"{value!r} is not a whole number")
    return int(number)


def as_datetime(value: Any) -> dt.datetime:
    """A naive UTC datetime from ms since the epoch, an ISO string, a date or a datetime."""
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            result = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Refused(f"{value!r} is not an ISO date/time") from None
    else:
        try:
            result = _EPOCH + dt.timedelta(milliseconds=as_number(value))
        except OverflowError:
            raise Refused(f"{value!r} ms is out of the datetime range") from None
    if result.tzinfo is not None:
        result = result.astimezone(dt.UTC).replace(tzinfo=None)
    return result


def as_date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return as_datetime(value).date()


def as_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            raise Refused(f"{value!r} is not an ISO time (HH:MM[:SS])") from None
    number = as_number(value)  # BokehJS may send ms since midnight
    if not 0 <= number < 86_400_000:
        raise Refused(f"{value!r} ms is not a time of day")
    return (_EPOCH + dt.timedelta(milliseconds=number)).time()


class Bounded(Widget):
    """A value (scalar, pair or list) whose items lie between ``start`` and ``end``."""

    # Each table row gives start/end their type; None means unbounded.
    start = param.Parameter(default=None, doc="The lowest accepted value (None: unbounded).")
    end = param.Parameter(default=None, doc="The highest accepted value (None: unbounded).")

    _shape: ClassVar[str] = "scalar"  # "scalar" | "pair" | "list"
    _nullable: ClassVar[bool] = False
    _throttled: ClassVar[bool] = False
    _bounds_props: ClassVar[tuple[str, str]] = ("start", "end")

    @staticmethod
    def _item(value: Any) -> Any:
        return as_number(value)

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        lo, hi = cls._bounds_props
        synced = {"value": "value", "start": lo, "end": hi}
        browser = {"value": "value"}
        if cls._throttled:
            browser["value_throttled"] = "value_throttled"
        return synced, browser

    def _from_model(self, prop: str, value: Any) -> Any:
        if value is None:
            if self._nullable:
                return None
            raise Refused("a value is required")
        if self._shape == "scalar":
            return self._item(value)
        if not isinstance(value, (list, tuple)):
            raise Refused(f"expected a {'pair' if self._shape == 'pair' else 'list'}")
        items = [self._item(v) for v in value]
        if self._shape == "list":
            return items
        if len(items) != 2:
            raise Refused(f"expected a (low, high) pair, got {len(items)} items")
        if items[0] > items[1]:
            raise Refused(f"low {items[0]!r} is above high {items[1]!r}")
        return tuple(items)

    def _validate_browser(self, name: str, value: Any) -> None:
        if value is None:
            return
        items = [value] if self._shape == "scalar" else list(value)
        start, end = self._bound_values()
        for item in items:
            if (start is not None and item < start) or (end is not None and item > end):
                raise Refused(f"{item!r} is outside [{start!r}, {end!r}]")

    def _bound_values(self) -> tuple[Any, Any]:
        start, end = self.start, self.end
        return (None if start is None else self._item(start), None if end is None else self._item(end))

    def _to_model(self, name: str, value: Any) -> Any:
        if name in ("value", "value_throttled") and value is not None and self._shape != "scalar":
            return tuple(value) if self._shape == "pair" else list(value)
        return value


class NumberSlider(Bounded):
    """Slider and RangeSlider: numbers; ``value_throttled`` changes when the drag ends."""

    _throttled = True


class IntItems(Bounded):
    """Whole-number widgets: a browser value is rounded (and the rounded value shown back)."""

    _item = staticmethod(as_int)


class IntSliderBase(IntItems):
    _throttled = True


class DateItems(Bounded):
    _item = staticmethod(as_date)
    _throttled = True


class DatetimeItems(Bounded):
    _item = staticmethod(as_datetime)
    _throttled = True


class NumberInputBase(Bounded):
    """Spinner / NumericInput: ``start``/``end`` are Bokeh's ``low``/``high``; an empty box is None."""

    _nullable = True
    _bounds_props = ("low", "high")


class IntInputBase(NumberInputBase):
    _item = staticmethod(as_exact_int)


class DatePickerBase(Bounded):
    """Date pickers: ``start``/``end`` are Bokeh's ``min_date``/``max_date``."""

    _nullable = True
    _bounds_props = ("min_date", "max_date")
    _item = staticmethod(as_date)


    def _validate_browser(self, name: str, value: Any) -> None:
        super()._validate_browser(name, value)
        if value is None:
            return
        items = [value] if self._shape == "scalar" else list(value)
        enabled, disabled = getattr(self, "enabled_dates", None), getattr(self, "disabled_dates", None)
        for item in items:
            day = item.date() if isinstance(item, dt.datetime) else item
            if disabled and _in_dates(day, disabled):
                raise Refused(f"{day} is one of the disabled_dates")
            if enabled and not _in_dates(day, enabled):
                raise Refused(f"{day} is not one of the enabled_dates")


def _in_dates(day: dt.date, spec: list[Any]) -> bool:
    """Whether ``day`` is one of Bokeh's ``enabled_dates``/``disabled_dates`` entries (dates or (first, last) pairs)."""
    for entry in spec:
        if isinstance(entry, (tuple, list)):
            if as_date(entry[0]) <= day <= as_date(entry[1]):
                return True
        elif as_date(entry) == day:
            return True
    return False


class DatetimePickerBase(DatePickerBase):
    _item = staticmethod(as_datetime)


class TimePickerBase(Bounded):
    """TimePicker: ``start``/``end`` are Bokeh's ``min_time``/``max_time``; the browser gets ISO strings."""

    _nullable = True
    _bounds_props = ("min_time", "max_time")
    _item = staticmethod(as_time)

    def _to_model(self, name: str, value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.time) else value


class Discrete(Choice):
    """DiscreteSlider (Bokeh's CategoricalSlider): a slider over ``options``."""

    _title_prop = "title"

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        return {"value": "value", "options": "categories"}, {"value": "value", "value_throttled": "value_throttled"}

    def _to_model(self, name: str, value: Any) -> Any:
        if name == "value_throttled":
            return self._label(value) or ""
        return super()._to_model(name, value)
