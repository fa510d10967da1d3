"""MessageLimits: configuration, the pre-parse value count, and the PATCH-DOC walk."""
from __future__ import annotations

import json

import pytest

from kernelstate.errors import ConfigError
from kernelstate.limits import MessageLimitError, MessageLimits, check_patch, count_values, model_weight
from kernelstate.server.options import ServeOptions


def test_limits_parse_from_cli_items_and_mappings() -> None:
    """NAME=N items and dicts build the same limits; ServeOptions takes either form."""
    parsed = MessageLimits.parse(["models=64", "depth=40"])
    assert parsed == MessageLimits.from_mapping({"models": 64, "depth": 40})
    assert parsed.values == MessageLimits().values
    assert ServeOptions.from_kwargs(message_limits={"models": 64, "depth": 40}).message_limits == parsed  # ks.serve


@pytest.mark.parametrize("items, says", [
    (["model=3"], "unknown message limit(s) ['model']"),
    (["models"], "expects NAME=N"),
    (["models=-1"], "expects NAME=N"),
    (["models=0"], "must be an int >= 1"),
])
def test_bad_limits_say_what_and_how(items: list[str], says: str) -> None:
    """A misspelled or out-of-range limit is a ConfigError naming the offending value."""
    with pytest.raises(ConfigError) as info:
        MessageLimits.parse(items)
    assert says in str(info.value)


def test_value_count_is_an_upper_bound_without_parsing() -> None:
    """count_values never undercounts (it also counts commas inside strings)."""
    value: object
    for value in ([], [1, 2, 3], {"a": [1, {"b": 2}], "c": "x,y"}, [[[[]]]], "plain"):
        text = json.dumps(value)
        exact = _exact(value)
        assert exact <= count_values(text) == count_values(text.encode())


def _exact(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(_exact(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_exact(v) for v in value)
    return 1


def _patch(new: object) -> dict[str, object]:
    return {"events": [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "tags", "new": new}]}


def test_model_definitions_weigh_the_models_they_build() -> None:
    """A Div weighs 1; a Plot builds its toolbar, ranges and scales and weighs more; unknown names weigh 1."""
    assert model_weight("Div") == 1
    assert model_weight("Plot") > 3
    assert model_weight("NoSuchModel") == 1 and model_weight(42) == 1
    limits = MessageLimits(models=model_weight("Plot") + 1)
    check_patch(_patch([{"type": "object", "name": "Plot", "id": "a"}, {"type": "object", "name": "Div", "id": "b"}]),
                limits)
    with pytest.raises(MessageLimitError) as info:
        check_patch(_patch([{"type": "object", "name": n, "id": n} for n in ("Plot", "Div", "Div")]), limits)
    assert info.value.limit == "models" and info.value.maximum == limits.models


def test_depth_and_references_stop_the_walk() -> None:
    """Nesting counts objects and arrays (the content is depth 1); references count every {"id": ...}."""
    limits = MessageLimits(depth=6, references=3)
    check_patch(_patch([[0]]), limits)          # content > events > event > new > [0]: depth 5
    check_patch(_patch([[[0]]]), limits)        # depth 6
    with pytest.raises(MessageLimitError, match="depth limit"):
        check_patch(_patch([[[[0]]]]), limits)
    check_patch(_patch([{"id": "p1"}, {"id": "p2"}]), limits)  # + the event's own reference: 3
    with pytest.raises(MessageLimitError, match=r"references limit \(4 > 3\)"):
        check_patch(_patch([{"id": "p1"}] * 3), limits)
    deep: object = 0
    for _ in range(100_000):  # far past Python's recursion limit: the walk is iterative
        deep = [deep]
    with pytest.raises(MessageLimitError, match="depth limit"):
        check_patch(_patch(deep), MessageLimits())
