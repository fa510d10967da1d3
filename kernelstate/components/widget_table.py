"""The widget table: every Bokeh input widget as a kernelstate component, declared as data.

Each row names the component (Panel's name where Panel has the widget,
Bokeh's otherwise), the Bokeh model it renders, the behaviour class that
converts and validates its value (``inputs.py``, ``ranges.py``), the
Bokeh properties exposed as parameters (typed from the Bokeh property by
``bokeh_params.py``; ``"start=low"`` exposes Bokeh's ``low`` as ``start``)
and per-widget parameter overrides. One Bokeh model can back several
components (``Slider`` gives ``IntSlider`` and ``FloatSlider``).

:data:`NOT_INPUTS` lists the concrete Bokeh widgets that are deliberately not
generated here, each with the reason; the test suite fails when Bokeh ships a
widget that is in neither table.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import param
from bokeh.models import widgets as bk

from . import inputs as i
from . import ranges as r
from .bokeh_params import bokeh_default, parameter_for
from .widgets import Widget

P = Callable[[], "param.Parameter[Any]"]
# param's stubs cannot express "the default may be None when allow_None is computed"; build through Any.
_p: Any = param


@dataclass(frozen=True)
class Row:
    """One generated component."""

    name: str
    bokeh: type[bk.Widget]
    base: type[Widget]
    props: tuple[str, ...] = ()
    params: Mapping[str, P] = field(default_factory=dict)
    doc: str = ""


_SLIDER = ("step", "format", "bar_color", "direction", "orientation", "show_value", "tooltips")
_TEXT = ("placeholder", "max_length", "description", "prefix", "suffix")
_PICKER = ("description", "position", "inline", "date_format", "disabled_dates", "enabled_dates")
_DT_PICKER = (*_PICKER, "clock", "seconds", "hour_increment", "minute_increment", "second_increment")
_GROUP_BUTTONS = ("button_type", "orientation")
_BUTTON = ("button_type",)


def _num(default: float | None = 0.0, **kw: Any) -> P:
    return lambda: _p.Number(default=default, allow_None=default is None, **kw)


def _int(default: int | None = 0, **kw: Any) -> P:
    return lambda: _p.Integer(default=default, allow_None=default is None, **kw)


def _date(default: dt.date | None) -> P:
    return lambda: _p.CalendarDate(default=default, allow_None=default is None)


def _datetime(default: dt.datetime | None) -> P:
    return lambda: _p.Date(default=default, allow_None=default is None)


def _tuple(default: tuple[Any, Any] | None) -> P:
    return lambda: _p.Tuple(default=default, length=2, allow_None=default is None)


def _list() -> P:
    return lambda: _p.List(default=[])


def _any(default: Any = None) -> P:
    return lambda: _p.Parameter(default=default)


def _str(default: str = "") -> P:
    return lambda: _p.String(default=default)


def _pair(base: type[Widget]) -> type[Widget]:
    """The (low, high) variant of a bounded behaviour class."""
    return type(f"{base.__name__}Pair", (base,), {"_shape": "pair", "__module__": __name__})


def _many(base: type[Widget]) -> type[Widget]:
    """The several-values variant (a list of values, or of option labels/indices)."""
    attrs = {"_shape": "list"} if issubclass(base, r.Bounded) else {"_multiple": True}
    return type(f"{base.__name__}List", (base,), {**attrs, "__module__": __name__})


_D0, _D1 = dt.date(2000, 1, 1), dt.date(2030, 12, 31)
_T0, _T1 = dt.datetime(2000, 1, 1), dt.datetime(2030, 12, 31)

TABLE: tuple[Row, ...] = (
    # -- sliders -------------------------------------------------------------------------------------
    Row("FloatSlider", bk.Slider, r.NumberSlider, _SLIDER,
        {"value": _num(0.0), "start": _num(0.0), "end": _num(1.0), "step": _num(0.1), "value_throttled": _num(None)},
        "A float slider; ``value_throttled`` changes when the drag ends."),
    Row("IntSlider", bk.Slider, r.IntSliderBase, _SLIDER,
        {"value": _int(0), "start": _int(0), "end": _int(10), "step": _int(1), "value_throttled": _int(None)},
        "An integer slider; browser values are rounded."),
    Row("RangeSlider", bk.RangeSlider, _pair(r.NumberSlider), _SLIDER,
        {"value": _tuple((0.0, 1.0)), "start": _num(0.0), "end": _num(1.0), "step": _num(0.1),
         "value_throttled": _tuple(None)}, "A (low, high) float range."),
    Row("IntRangeSlider", bk.RangeSlider, _pair(r.IntSliderBase), _SLIDER,
        {"value": _tuple((0, 10)), "start": _int(0), "end": _int(10), "step": _int(1), "value_throttled": _tuple(None)},
        "A (low, high) integer range."),
    Row("DateSlider", bk.DateSlider, r.DateItems, _SLIDER,
        {"value": _date(_D0), "start": _date(_D0), "end": _date(_D1), "step": _int(1), "value_throttled": _date(None)},
        "A ``datetime.date`` slider (``step`` in days)."),
    Row("DateRangeSlider", bk.DateRangeSlider, _pair(r.DateItems), _SLIDER,
        {"value": _tuple((_D0, _D1)), "start": _date(_D0), "end": _date(_D1), "step": _int(1),
         "value_throttled": _tuple(None)}, "A (low, high) range of ``datetime.date``."),
    Row("DatetimeRangeSlider", bk.DatetimeRangeSlider, _pair(r.DatetimeItems), _SLIDER,
        {"value": _tuple((_T0, _T1)), "start": _datetime(_T0), "end": _datetime(_T1), "step": _int(3_600_000),
         "value_throttled": _tuple(None)}, "A (low, high) range of naive UTC ``datetime.datetime`` (``step`` in ms)."),
    Row("DiscreteSlider", bk.CategoricalSlider, r.Discrete, ("bar_color", "direction", "orientation", "show_value", "tooltips"),
        {"value": _any(), "value_throttled": _any()}, "A slider over ``options`` (Bokeh's CategoricalSlider)."),
    # -- numbers, text, colors -----------------------------------------------------------------------
    Row("IntInput", bk.Spinner, r.IntInputBase, ("step", "format", "placeholder", "description", "page_step_multiplier"),
        {"value": _int(0), "start": _int(None), "end": _int(None), "step": _int(1)}, "A whole-number spinner."),
    Row("FloatInput", bk.Spinner, r.NumberInputBase, ("step", "format", "placeholder", "description", "page_step_multiplier"),
        {"value": _num(0.0), "start": _num(None), "end": _num(None), "step": _num(0.1)}, "A number spinner."),
    Row("NumericInput", bk.NumericInput, r.NumberInputBase, ("mode", "format", "placeholder", "description"),
        {"value": _num(None), "start": _num(None), "end": _num(None)}, "A plain number box (``mode`` 'int' or 'float')."),
    Row("TextInput", bk.TextInput, i.TextValue, _TEXT, {"value": _str(), "value_input": _str()},
        "One line of text; ``value`` on Enter/blur, ``value_input`` per key."),
    Row("PasswordInput", bk.PasswordInput, i.TextValue, _TEXT, {"value": _str(), "value_input": _str()},
        "A masked text input."),
    Row("TextAreaInput", bk.TextAreaInput, i.TextValue, ("placeholder", "max_length", "description", "rows", "cols"),
        {"value": _str(), "value_input": _str()}, "Multi-line text."),
    Row("AutocompleteInput", bk.AutocompleteInput, i.TextValue,
        (*_TEXT, "completions", "min_characters", "max_completions", "case_sensitive", "restrict", "search_strategy"),
        {"value": _str(), "value_input": _str()}, "Text with completions; ``restrict=True`` refuses other values."),
    Row("ColorPicker", bk.ColorPicker, i.ColorValue, ("description",), {"value": _str("#000000")},
        "A ``#rrggbb`` color (Bokeh's ``color``)."),
    Row("PaletteSelect", bk.PaletteSelect, i.PaletteChoice, ("items", "ncols", "swatch_width", "description"),
        {"value": _str(), "items": lambda: param.List(default=[])}, "Pick a named palette from ``items``."),
    # -- toggles and choices ---------------------------------------------------------------------------
    Row("Checkbox", bk.Checkbox, i.ToggleValue, (), {"value": lambda: param.Boolean(default=False)}, "A checkbox."),
    Row("Switch", bk.Switch, i.ToggleValue, (), {"value": lambda: param.Boolean(default=False)}, "An on/off switch."),
    Row("Toggle", bk.Toggle, i.ToggleValue, _BUTTON, {"value": lambda: param.Boolean(default=False)},
        "A two-state button; ``value`` is True while pressed."),
    Row("Select", bk.Select, i.Choice, ("description",), {"value": _any()}, "Pick one of ``options``."),
    Row("MultiSelect", bk.MultiSelect, _many(i.Choice), ("description", "size"),
        {"value": _list()}, "Pick several of ``options`` from a list box."),
    Row("MultiChoice", bk.MultiChoice, _many(i.Choice),
        ("description", "placeholder", "max_items", "delete_button", "option_limit", "search_option_limit", "solid"),
        {"value": _list()}, "Pick several of ``options`` as removable tags."),
    Row("RadioBoxGroup", bk.RadioGroup, i.Group, ("inline",), {"value": _any()}, "One of ``options`` as radio boxes."),
    Row("RadioButtonGroup", bk.RadioButtonGroup, i.Group, _GROUP_BUTTONS, {"value": _any()},
        "One of ``options`` as buttons."),
    Row("CheckBoxGroup", bk.CheckboxGroup, _many(i.Group), ("inline",),
        {"value": _list()}, "Several of ``options`` as checkboxes."),
    Row("CheckButtonGroup", bk.CheckboxButtonGroup, _many(i.Group), _GROUP_BUTTONS,
        {"value": _list()}, "Several of ``options`` as toggle buttons."),
    # -- dates and times ---------------------------------------------------------------------------------
    Row("DatePicker", bk.DatePicker, r.DatePickerBase, _PICKER,
        {"value": _date(None), "start": _date(None), "end": _date(None)}, "A ``datetime.date`` (or None)."),
    Row("DateRangePicker", bk.DateRangePicker, _pair(r.DatePickerBase), _PICKER,
        {"value": _tuple(None), "start": _date(None), "end": _date(None)}, "A (first, last) pair of dates."),
    Row("MultipleDatePicker", bk.MultipleDatePicker, _many(r.DatePickerBase),
        (*_PICKER, "separator"), {"value": _list(), "start": _date(None), "end": _date(None)}, "A list of dates."),
    Row("DatetimePicker", bk.DatetimePicker, r.DatetimePickerBase, _DT_PICKER,
        {"value": _datetime(None), "start": _datetime(None), "end": _datetime(None)},
        "A naive UTC ``datetime.datetime`` (or None)."),
    Row("DatetimeRangePicker", bk.DatetimeRangePicker, _pair(r.DatetimePickerBase),
        _DT_PICKER, {"value": _tuple(None), "start": _datetime(None), "end": _datetime(None)},
        "A (first, last) pair of datetimes."),
    Row("MultipleDatetimePicker", bk.MultipleDatetimePicker, _many(r.DatetimePickerBase),
        (*_DT_PICKER, "separator"), {"value": _list(), "start": _datetime(None), "end": _datetime(None)},
        "A list of datetimes."),
    Row("TimePicker", bk.TimePicker, r.TimePickerBase,
        ("description", "position", "inline", "time_format", "clock", "seconds", "hour_increment", "minute_increment",
         "second_increment"),
        {"value": lambda: param.ClassSelector(default=None, class_=dt.time, allow_None=True),
         "start": lambda: param.ClassSelector(default=None, class_=dt.time, allow_None=True),
         "end": lambda: param.ClassSelector(default=None, class_=dt.time, allow_None=True)},
        "A ``datetime.time`` (or None)."),
    # -- buttons, menus, files -------------------------------------------------------------------------
    Row("Button", bk.Button, i.ClickButton, _BUTTON, {}, "A push button; ``on_click(cb)``, ``clicks``."),
    Row("MenuButton", bk.Dropdown, i.Menu, ("button_type", "split"), {},
        "A dropdown of ``items``; ``on_click(cb)`` gets the chosen value as ``event.new``."),
    Row("FileInput", bk.FileInput, i.Upload, ("accept", "multiple", "directory", "description"), {},
        "Upload files: ``value`` (bytes), ``filename``, ``mime_type``."),
)

#: Concrete Bokeh widgets with no generated component here, and why.
NOT_INPUTS: dict[str, str] = {
    "Div": "static markup: ks.pane.HTML / ks.pane.Markdown render it",
    "Paragraph": "static markup: ks.pane.Str renders text",
    "PreText": "static markup: ks.pane.Str renders preformatted text",
    "Markdown": "static markup: ks.pane.Markdown renders (and sanitizes) Markdown on the server",
    "HelpButton": "shows a tooltip in the browser; it has no value and sends no event",
    "Progress": "a display, not an input: ks.indicators.Progress",
    "DataTable": "written by hand (selection, cell edits, stream/patch): ks.widgets.DataTable in table.py",
    "DataCube": "a grouped, read-only DataTable view: ks.widgets.DataTable covers the input side",
}

_TITLE_DEFAULTS = {"Button": "Button", "Toggle": "Toggle", "MenuButton": "Menu"}


def _build(row: Row) -> type[Widget]:
    base = row.base
    value_synced, from_browser = base.value_mapping()
    namespace: dict[str, Any] = {"__doc__": row.doc, "__module__": "kernelstate.widgets", "__qualname__": row.name,
                                 "_bokeh_model": row.bokeh}
    synced = {**Widget.BASE_SYNCED, **value_synced}
    if base._title_prop is not None:
        synced["name"] = base._title_prop
    for spec in row.props:
        name, _, prop = spec.partition("=")
        synced[name] = prop or name
    for name, prop in list(synced.items()):
        if name in row.params:
            namespace[name] = row.params[name]()
        elif name not in ("name", *Widget.BASE_SYNCED) and not hasattr(base, name):
            namespace[name] = parameter_for(row.bokeh, prop)
    for name, factory in row.params.items():
        namespace.setdefault(name, factory())
    namespace["_synced"] = {n: p for n, p in synced.items() if p in row.bokeh.properties()}
    namespace["_from_browser"] = from_browser
    if row.name in _TITLE_DEFAULTS:
        default = _TITLE_DEFAULTS[row.name]

        def __init__(self: Widget, **params: Any) -> None:
            params.setdefault("name", default)
            base.__init__(self, **params)
        namespace["__init__"] = __init__
    cls = type(row.name, (base,), namespace)
    return cls


def _check_defaults(row: Row) -> None:
    # A Bokeh property that is Required has no default: the row must give one.
    for spec in row.props:
        name, _, prop = spec.partition("=")
        if name not in row.params and bokeh_default(row.bokeh, prop or name) is None and \
                "Required" in repr(row.bokeh.lookup(prop or name).property):
            raise TypeError(f"widget table row {row.name}: Bokeh {row.bokeh.__name__}.{prop or name} is required; "
                            "give the row a parameter default for it")


def build_all() -> dict[str, type[Widget]]:
    """Generate every component of :data:`TABLE` (done once, by ``kernelstate.widgets``)."""
    classes = {}
    for row in TABLE:
        _check_defaults(row)
        classes[row.name] = _build(row)
    return classes


WIDGETS: dict[str, type[Widget]] = build_all()
