"""Every generated widget, driven from a browser tab over a real served session.

For each component in ``kernelstate.widgets`` two tabs (ProtocolClient) show
the *same* widget; tab A sends a PATCH-DOC as BokehJS would. The parameter
updates, a watcher fires once, tab B follows; an invalid value and any value
sent to a disabled widget are refused, logged once per session, and tab A is
sent the accepted value back.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

import bokeh.models.widgets as bk
import pytest
from bokeh.core.has_props import is_abstract
from bokeh.core.serialization import Serializable
from bokeh.events import MenuItemClick

import kernelstate as ks
from kernelstate.components.widget_table import NOT_INPUTS, TABLE, WIDGETS
from kernelstate.testing import ProtocolClient

D, T = dt.date, dt.datetime


def ms(value: dt.date) -> float:
    start = T(1970, 1, 1)
    moment = value if isinstance(value, dt.datetime) else T(value.year, value.month, value.day)
    return (moment - start).total_seconds() * 1000


@dataclass
class Case:
    kwargs: dict[str, Any]
    prop: str                 # the Bokeh property the browser sets
    valid: Any                # what the browser sends
    expected: Any             # the parameter value it becomes
    invalid: Any = None       # a value the server must refuse (None: only "disabled" is tested)
    param_name: str = "value"
    extra: dict[str, Any] = field(default_factory=dict)


_DATES = {"start": D(2024, 1, 1), "end": D(2024, 12, 31)}
_TIMES = {"start": T(2024, 1, 1), "end": T(2024, 12, 31)}
_OPTIONS = {"options": ["a", "b", "c"]}
CASES: dict[str, Case] = {
    "FloatSlider": Case({"start": 0.0, "end": 10.0, "value": 1.0}, "value", 2.5, 2.5, 11.0),
    "IntSlider": Case({"start": 0, "end": 10, "value": 1}, "value", 4, 4, 11),
    "RangeSlider": Case({"start": 0.0, "end": 10.0, "value": (1.0, 2.0)}, "value", (2.0, 3.0), (2.0, 3.0), (3.0, 2.0)),
    "IntRangeSlider": Case({"start": 0, "end": 10, "value": (1, 2)}, "value", (2, 5), (2, 5), (-1, 5)),
    "DateSlider": Case({**_DATES, "value": D(2024, 6, 1)}, "value", ms(D(2024, 7, 1)), D(2024, 7, 1), ms(D(2025, 1, 5))),
    "DateRangeSlider": Case({**_DATES, "value": (D(2024, 1, 1), D(2024, 2, 1))}, "value",
                            (ms(D(2024, 2, 1)), ms(D(2024, 3, 1))), (D(2024, 2, 1), D(2024, 3, 1)),
                            (ms(D(2023, 1, 1)), ms(D(2024, 3, 1)))),
    "DatetimeRangeSlider": Case({**_TIMES, "value": (T(2024, 1, 1), T(2024, 2, 1))}, "value",
                                (ms(T(2024, 2, 1, 6)), ms(T(2024, 3, 1, 18))), (T(2024, 2, 1, 6), T(2024, 3, 1, 18)),
                                (ms(T(2024, 3, 1)), ms(T(2024, 2, 1)))),
    "DiscreteSlider": Case({"options": ["lo", "mid", "hi"]}, "value", "hi", "hi", "nope"),
    "IntInput": Case({"start": 0, "end": 10, "value": 1}, "value", 7, 7, 3.5),
    "FloatInput": Case({"start": 0.0, "end": 1.0, "value": 0.5}, "value", 0.25, 0.25, 2.0),
    "NumericInput": Case({"start": 0.0, "end": 10.0, "value": 1.0}, "value", 3.0, 3.0, -1.0),
    "TextInput": Case({"max_length": 5}, "value", "hello", "hello", "too long"),
    "PasswordInput": Case({"max_length": 5}, "value", "s3cr3", "s3cr3", "too long"),
    "TextAreaInput": Case({"max_length": 5}, "value", "a\nb", "a\nb", "too long"),
    "AutocompleteInput": Case({"completions": ["apple", "banana"], "restrict": True}, "value", "apple", "apple", "cherry"),
    "ColorPicker": Case({"value": "#000000"}, "color", "#ff0000", "#ff0000"),
    "PaletteSelect": Case({"items": [("a", ["#000000"]), ("b", ["#ffffff"])], "value": "a"}, "value", "b", "b", "zzz"),
    "Checkbox": Case({}, "active", True, True),
    "Switch": Case({}, "active", True, True),
    "Toggle": Case({}, "active", True, True),
    "Select": Case({"options": {"One": 1, "Two": 2}}, "value", "Two", 2, "Three"),
    "MultiSelect": Case(_OPTIONS, "value", ["a", "c"], ["a", "c"], ["a", "x"]),
    "MultiChoice": Case({**_OPTIONS, "max_items": 2}, "value", ["b"], ["b"], ["a", "b", "c"]),
    "RadioBoxGroup": Case(_OPTIONS, "active", 1, "b", 5),
    "RadioButtonGroup": Case(_OPTIONS, "active", 2, "c", -1),
    "CheckBoxGroup": Case(_OPTIONS, "active", [0, 2], ["a", "c"], [0, 7]),
    "CheckButtonGroup": Case(_OPTIONS, "active", [1], ["b"], [3]),
    "DatePicker": Case(_DATES, "value", "2024-05-06", D(2024, 5, 6), "2025-01-01"),
    "DateRangePicker": Case(_DATES, "value", ("2024-05-06", "2024-05-09"), (D(2024, 5, 6), D(2024, 5, 9)),
                            ("2024-05-09", "2024-05-06")),
    "MultipleDatePicker": Case(_DATES, "value", ["2024-05-06", "2024-05-08"], [D(2024, 5, 6), D(2024, 5, 8)],
                               ["2023-12-31"]),
    "DatetimePicker": Case(_TIMES, "value", "2024-05-06 12:30:00", T(2024, 5, 6, 12, 30), "2025-01-01 00:00:00"),
    "DatetimeRangePicker": Case(_TIMES, "value", (ms(T(2024, 5, 6, 1)), ms(T(2024, 5, 9, 2))),
                                (T(2024, 5, 6, 1), T(2024, 5, 9, 2)), (ms(T(2024, 5, 9)), ms(T(2024, 5, 6)))),
    "MultipleDatetimePicker": Case(_TIMES, "value", [ms(T(2024, 5, 6, 1))], [T(2024, 5, 6, 1)], [ms(T(2030, 1, 1))]),
    "TimePicker": Case({"start": dt.time(8), "end": dt.time(18)}, "value", "09:30:00", dt.time(9, 30), "20:00:00"),
    "FileInput": Case({}, "value", base64.b64encode(b"hello").decode(), b"hello", "!!not base64!!"),
}
EVENT_WIDGETS = {"Button", "MenuButton"}
# Bokeh serializes datetime.time as ms since midnight but its Python Time property cannot read that back, so
# a Python replica (ProtocolClient) cannot hold a TimePicker with a value; BokehJS can. Tested on the server
# Document in test_time_picker_validates_on_the_server below.
SERVER_ONLY = {"TimePicker"}


def test_every_bokeh_input_widget_has_a_component() -> None:
    """Each concrete Bokeh widget is generated (Panel's name or Bokeh's) or listed in NOT_INPUTS with a reason."""
    generated = {row.bokeh.__name__ for row in TABLE}
    concrete = {name for name, cls in vars(bk).items()
                if inspect.isclass(cls) and issubclass(cls, bk.Widget) and not is_abstract(cls)}
    missing = sorted(concrete - generated - set(NOT_INPUTS))
    assert not missing, f"Bokeh input widgets without a kernelstate component: {missing}"
    assert not generated & set(NOT_INPUTS)
    assert set(WIDGETS) == set(CASES) | EVENT_WIDGETS, "every generated widget needs a browser test case below"
    for name in WIDGETS:
        assert getattr(ks.widgets, name) is WIDGETS[name]
    assert ks.widgets.DataTable.__module__ == "kernelstate.components.table"


def bokeh_type(name: str) -> type[Any]:
    return next(row.bokeh for row in TABLE if row.name == name)


def refusals(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "refused browser value" in r.getMessage() and f" {name}." in r.getMessage()]


@pytest.mark.parametrize("name", sorted(set(CASES) - SERVER_ONLY))
def test_browser_change_syncs_validates_and_sends_back(name: str, ks_server: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A browser PATCH-DOC sets the parameter once and reaches the other tab; refused values are sent back."""
    case = CASES[name]
    widget = getattr(ks.widgets, name)(**case.kwargs)
    calls: list[Any] = []
    widget.param.watch(lambda e: calls.append(e.new), case.param_name)
    server = ks_server(lambda: widget)
    caplog.set_level(logging.WARNING, logger="kernelstate.components.validation")

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            ma, mb = a.find(bokeh_type(name))[0], b.find(bokeh_type(name))[0]
            await a.set(ma, case.prop, case.valid)
            assert getattr(widget, case.param_name) == case.expected
            assert calls == [case.expected]
            if case.prop != "value" or name != "FileInput":
                await b.wait_for(lambda: getattr(mb, case.prop) == getattr(ma, case.prop))
            accepted = getattr(ma, case.prop)
            if case.invalid is not None:
                for _ in range(2):
                    await a.set(ma, case.prop, case.invalid)
                    await a.wait_for(lambda: getattr(ma, case.prop) == accepted)
                assert getattr(widget, case.param_name) == case.expected and calls == [case.expected]
                assert len(refusals(caplog, name)) == 1, "a refusal is logged once per session"
            widget.disabled = True
            await a.wait_for(lambda: ma.disabled)
            other = _other_valid(name, case)
            await a.set(ma, case.prop, other)
            await a.wait_for(lambda: getattr(ma, case.prop) == accepted)
            assert getattr(widget, case.param_name) == case.expected and calls == [case.expected]
            await a.set(ma, "disabled", False)  # a hostile client re-enabling its copy is put back
            await a.wait_for(lambda: ma.disabled)
            assert widget.disabled

    asyncio.run(main())


def _other_valid(name: str, case: Case) -> Any:
    """A value that would be accepted if the widget were enabled (and differs from ``case.valid``)."""
    others = {"Checkbox": False, "Switch": False, "Toggle": False, "ColorPicker": "#00ff00", "FileInput": "aGk="}
    if name in others:
        return others[name]
    return {
        "FloatSlider": 3.5, "IntSlider": 5, "RangeSlider": (1.0, 4.0), "IntRangeSlider": (0, 1),
        "DateSlider": ms(D(2024, 8, 1)), "DateRangeSlider": (ms(D(2024, 4, 1)), ms(D(2024, 5, 1))),
        "DatetimeRangeSlider": (ms(T(2024, 4, 1)), ms(T(2024, 5, 1))), "DiscreteSlider": "lo", "IntInput": 2,
        "FloatInput": 0.75, "NumericInput": 4.0, "TextInput": "hi", "PasswordInput": "pw", "TextAreaInput": "x",
        "AutocompleteInput": "banana", "PaletteSelect": "a", "Select": "One", "MultiSelect": ["b"], "MultiChoice": ["a"],
        "RadioBoxGroup": 0, "RadioButtonGroup": 0, "CheckBoxGroup": [1], "CheckButtonGroup": [0],
        "DatePicker": "2024-05-07", "DateRangePicker": ("2024-05-01", "2024-05-02"), "MultipleDatePicker": ["2024-01-02"],
        "DatetimePicker": "2024-05-06 13:00:00", "DatetimeRangePicker": (ms(T(2024, 5, 1)), ms(T(2024, 5, 2))),
        "MultipleDatetimePicker": [ms(T(2024, 5, 7))], "TimePicker": "10:00:00",
    }[name]


def test_button_click_counts_and_disabled_click_is_refused(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A click runs on_click once; a click on a disabled button (from a client that ignores `disabled`) does not."""
    button = ks.widgets.Button(name="go")
    seen: list[int] = []
    button.on_click(lambda e: seen.append(e.new))
    server = ks_server(lambda: button)
    caplog.set_level(logging.WARNING, logger="kernelstate.components.validation")

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            model = tab.find(bk.Button)[0]
            await tab.click(model)
            assert button.clicks == 1 and seen == [1]
            button.disabled = True
            await tab.wait_for(lambda: model.disabled)
            await tab.click(model)
            await tab.click(model)
            assert button.clicks == 1 and seen == [1]
            assert len(refusals(caplog, "Button")) == 1

    asyncio.run(main())


class BrowserMenuItemClick(Serializable):
    """A menu_item_click as BokehJS sends it: with its ``item`` (Bokeh's Python MenuItemClick leaves it out)."""

    def __init__(self, model: Any, item: str) -> None:
        self.model, self.item = model, item

    def to_serializable(self, serializer: Any) -> Any:
        values = serializer.encode({"model": self.model, "item": self.item})
        return {"type": "event", "name": MenuItemClick.event_name, "values": values}


def test_menu_button_delivers_item_values_once(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Choosing a menu item sets `clicked` to its value and runs on_click once; unknown items are refused."""
    menu = ks.widgets.MenuButton(name="File", items=[("Open", "open"), None, ("Save", "save")])
    chosen: list[Any] = []
    menu.on_click(lambda e: chosen.append(e.new))
    server = ks_server(lambda: menu)
    caplog.set_level(logging.WARNING, logger="kernelstate.components.validation")

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            model = tab.find(bk.Dropdown)[0]
            assert [None if m is None else list(m) for m in model.menu] == [["Open", "open"], None, ["Save", "save"]]
            await tab.send_event(BrowserMenuItemClick(model, item="save"))
            await tab.send_event(BrowserMenuItemClick(model, item="save"))
            assert chosen == ["save", "save"] and menu.clicked == "save"
            await tab.send_event(BrowserMenuItemClick(model, item="rm -rf"))
            assert chosen == ["save", "save"] and len(refusals(caplog, "MenuButton")) == 1

    asyncio.run(main())


def test_time_picker_validates_on_the_server(caplog: pytest.LogCaptureFixture) -> None:
    """TimePicker: a browser time inside [start, end] is taken, one outside is refused and set back."""
    from kernelstate.context import activate
    from kernelstate.session import Session

    case = CASES["TimePicker"]
    picker = ks.widgets.TimePicker(**case.kwargs)
    session = Session()
    model = picker.get_model(session.document, session)
    session.document.add_root(model)
    with activate(session):
        model.value = case.valid
        assert picker.value == case.expected
        model.value = case.invalid
    assert picker.value == case.expected and model.value == case.expected
    assert session.refused_values == {"TimePicker.value": 1}


def test_slider_value_throttled_is_synced_and_validated() -> None:
    """`value_throttled` (set by BokehJS when a drag ends) reaches its parameter, through the same checks."""
    from kernelstate.context import activate
    from kernelstate.session import Session

    slider = ks.widgets.IntSlider(start=0, end=10, value=1)
    ends: list[int] = []
    slider.param.watch(lambda e: ends.append(e.new), "value_throttled")
    session = Session()
    model = slider.get_model(session.document, session)
    session.document.add_root(model)
    with activate(session):
        model.set_from_json("value_throttled", 6)
        model.set_from_json("value_throttled", 60)
    assert slider.value_throttled == 6 and ends == [6] and model.value_throttled == 6
    assert session.refused_values == {"IntSlider.value_throttled": 1}


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_generated_class_renders_its_bokeh_model_with_every_synced_property(row: Any) -> None:
    """Each generated component renders the row's Bokeh model, each synced parameter on its Bokeh property."""
    from kernelstate.session import Session

    kwargs = CASES[row.name].kwargs if row.name in CASES else {}
    widget = WIDGETS[row.name](**kwargs)
    session = Session()
    model = widget.get_model(session.document, session)
    assert type(model) is row.bokeh
    for name, prop in widget._synced.items():
        expected = widget._to_model(name, getattr(widget, name))
        expected = model.lookup(prop).property.prepare_value(model, prop, expected)  # as Bokeh stores it
        assert getattr(model, prop) == expected, (name, prop)


def test_parameters_are_typed_from_bokeh_properties() -> None:
    """Exposed Bokeh properties become typed parameters with Bokeh's defaults and bounds."""
    import param

    assert isinstance(ks.widgets.TextAreaInput.param.rows, param.Integer)
    assert ks.widgets.TextAreaInput.param.rows.default == bk.TextAreaInput().rows
    assert isinstance(ks.widgets.IntInput.param.page_step_multiplier, param.Number)
    assert ks.widgets.IntInput.param.page_step_multiplier.bounds == (0, None)
    assert isinstance(ks.widgets.FloatSlider.param.orientation, param.Selector)
    assert set(ks.widgets.FloatSlider.param.orientation.objects) == {"horizontal", "vertical"}
    assert isinstance(ks.widgets.AutocompleteInput.param.completions, param.List)
    assert ks.widgets.MultiChoice.param.max_items.allow_None
    with pytest.raises(ValueError):
        ks.widgets.TimePicker(hour_increment=0)  # Bokeh: Positive(Int)


def test_date_picker_refuses_disabled_dates() -> None:
    """A date the picker disables (or does not enable) is refused like a value out of bounds."""
    from kernelstate.context import activate
    from kernelstate.session import Session

    picker = ks.widgets.DatePicker(disabled_dates=[D(2024, 5, 1), (D(2024, 5, 10), D(2024, 5, 12))])
    session = Session()
    model = picker.get_model(session.document, session)
    session.document.add_root(model)
    with activate(session):
        model.value = "2024-05-02"
        model.value = "2024-05-11"
        model.value = "2024-05-01"
    assert picker.value == D(2024, 5, 2) and model.value == "2024-05-02"
    assert session.refused_values == {"DatePicker.value": 2}
    only = ks.widgets.DatePicker(enabled_dates=[(D(2024, 1, 1), D(2024, 1, 31))])
    model = only.get_model(session.document, session)
    with activate(session):
        model.value = "2024-02-01"
    assert only.value is None
