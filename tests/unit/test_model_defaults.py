"""Building a model without its default-valued arguments gives the same model (components/model_defaults.py)."""
from __future__ import annotations

from typing import Any

import pytest
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.models import Button, Column, Div, Slider

from kernelstate.components.model_defaults import new_model, without_defaults
from kernelstate.components.widget_table import WIDGETS

_KWARGS: dict[str, dict[str, Any]] = {
    "DiscreteSlider": {"options": ["lo", "mid", "hi"]},
    "PaletteSelect": {"items": [("a", ["#000000"]), ("b", ["#ffffff"])], "value": "a"},
    "AutocompleteInput": {"completions": ["apple", "banana"]},
    **{name: {"options": ["a", "b", "c"]} for name in ("Select", "MultiSelect", "MultiChoice", "RadioBoxGroup",
                                                       "RadioButtonGroup", "CheckBoxGroup", "CheckButtonGroup")},
}


def state(model: Any) -> dict[str, Any]:
    """Every property's value, and which ones are set (what serialization sends)."""
    values = {}
    for name in sorted(model.properties()):
        try:
            values[name] = getattr(model, name)
        except UnsetValueError:  # a readonly property without a value (FileInput.filename)
            values[name] = "<unset>"
    return {"values": values, "set": model.properties_with_values(include_defaults=False)}


@pytest.mark.parametrize("name", sorted(WIDGETS))
@pytest.mark.parametrize("base", [{}, {"disabled": True, "visible": False, "width": 0, "sizing_mode": "fixed"}])
def test_every_widget_builds_the_same_model(name: str, base: dict[str, Any]) -> None:
    widget = WIDGETS[name](name="w", **_KWARGS.get(name, {}), **base)
    cls, props = widget._bokeh_model, widget._model_props(list(widget._synced))
    assert state(new_model(cls, **props)) == state(cls(**props))


def test_only_literal_defaults_of_the_same_type_are_dropped() -> None:
    assert without_defaults(Slider, {"title": "", "width": None, "disabled": False, "start": 0}) == {
        "width": None, "start": 0}  # Slider's width is 300 by default; start has no default
    assert without_defaults(Slider, {"disabled": 0, "step": 1.0, "bar_color": "#e6e6e6"}) == {"disabled": 0, "step": 1.0}
    assert without_defaults(Div, {"css_classes": [], "styles": {}, "tags": ()}) == {"tags": ()}
    assert without_defaults(Div, {"css_classes": ["x"], "styles": {"a": "b"}}) == {"css_classes": ["x"], "styles": {"a": "b"}}
    assert without_defaults(Column, {"css_classes": [], "sizing_mode": None}) == {}


@pytest.mark.parametrize(("cls", "props"), [
    (Div, {"text": "<p>x</p>", "css_classes": ["ks-pane"], "sizing_mode": None}),
    (Div, {"text": "", "css_classes": [], "sizing_mode": "stretch_width"}),
    (Column, {"children": [], "sizing_mode": None, "styles": {}, "css_classes": []}),
    (Column, {"children": [Div()], "sizing_mode": "fixed", "styles": {"color": "red"}, "css_classes": ["c"]}),
    (Button, {"label": "", "button_type": "default", "disabled": False, "width": None}),
])
def test_panes_and_layouts_build_the_same_model(cls: Any, props: dict[str, Any]) -> None:
    assert state(new_model(cls, **props)) == state(cls(**props))
