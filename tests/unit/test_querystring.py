"""How location sync writes parameter values in a URL query and reads them back (kernelstate/querystring.py)."""
from __future__ import annotations

import datetime as dt
from typing import Any

import param
import pytest

import kernelstate as ks
from kernelstate.querystring import QueryValueError, codec_for


class Settings(param.Parameterized):
    flag = param.Boolean(default=False)
    count = param.Integer(default=1)
    ratio = param.Number(default=0.5)
    text = param.String(default="")
    maybe = param.Integer(default=None, allow_None=True)
    mode = param.Selector(default="fast", objects=["fast", "slow", 3])
    modes = param.ListSelector(default=[], objects=["x", "y"])
    words = param.List(default=[])
    numbers = param.List(default=[], item_type=int)
    span = param.Range(default=(0, 10))
    period = param.CalendarDateRange(default=(dt.date(2024, 1, 1), dt.date(2024, 2, 1)))
    when = param.Date(default=dt.datetime(2024, 1, 1, 9, 30))
    blob = param.Dict(default={})


@pytest.mark.parametrize(("name", "value", "texts"), [
    ("flag", True, ["true"]),
    ("count", 42, ["42"]),
    ("ratio", 0.1, ["0.1"]),
    ("text", "a b&c", ["a b&c"]),
    ("maybe", None, [""]),
    ("mode", 3, ["3"]),
    ("modes", ["y", "x"], ["y", "x"]),
    ("words", [], [""]),
    ("words", ["a", "b"], ["a", "b"]),
    ("numbers", [3, 4], ["3", "4"]),
    ("span", (2, 8), ["2", "8"]),
    ("period", (dt.date(2024, 3, 1), dt.date(2024, 3, 9)), ["2024-03-01", "2024-03-09"]),
    ("when", dt.datetime(2024, 5, 1, 12, 0), ["2024-05-01T12:00:00"]),
])
def test_values_round_trip(name: str, value: Any, texts: list[str]) -> None:
    codec = codec_for(Settings(), name)
    assert codec.encode(value) == texts
    assert codec.decode(texts) == value


@pytest.mark.parametrize(("name", "texts", "message"), [
    ("count", ["1.5"], "'1.5' is not a whole number"),
    ("ratio", ["nan"], "'nan' is not a finite number"),
    ("flag", ["maybe"], "'maybe' is not a boolean: use true or false"),
    ("mode", ["medium"], "'medium' is not one of the options of Settings.mode ('fast', 'slow', '3')"),
    ("span", ["1", "2", "3"], "3 values for Settings.span, which needs exactly 2"),
    ("when", ["yesterday"], "'yesterday' is not an ISO date and time"),
])
def test_bad_values_say_what_was_expected(name: str, texts: list[str], message: str) -> None:
    with pytest.raises(QueryValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        codec_for(Settings(), name).decode(texts)


def test_reading_rules() -> None:
    """The last of repeated single values counts; an empty value is None where allowed; booleans read 1/0/on/off."""
    settings = Settings()
    assert codec_for(settings, "count").decode(["1", "2"]) == 2
    assert codec_for(settings, "maybe").decode([""]) is None
    assert codec_for(settings, "text").decode([""]) == ""
    assert [codec_for(settings, "flag").decode([t]) for t in ("1", "off", "YES")] == [True, False, True]


def test_widgets_with_options_write_labels() -> None:
    """A Select/MultiChoice with a dict of options writes the labels and reads only current labels."""
    pick = ks.widgets.Select(options={"One": 1, "Two": 2}, value=2)
    codec = codec_for(pick, "value")
    assert codec.encode(2) == ["Two"] and codec.decode(["One"]) == 1
    with pytest.raises(QueryValueError, match="not one of the options"):
        codec.decode(["1"])
    many = codec_for(ks.widgets.MultiChoice(options=["a", "b"], value=["a"]), "value")
    assert many.encode(["b", "a"]) == ["b", "a"] and many.decode(["b"]) == ["b"]
    assert codec_for(ks.widgets.DatePicker(value=dt.date(2024, 1, 2)), "value").encode(dt.date(2024, 1, 2)) == ["2024-01-02"]


def test_parameters_that_cannot_live_in_a_url_are_refused_at_sync_time() -> None:
    with pytest.raises(TypeError, match="cannot sync Settings.blob with the URL"):
        codec_for(Settings(), "blob")
