"""Building a Bokeh model without passing it the values it has by default.

Bokeh sets a constructor argument by validating it (``prepare_value``), then
building the property's default to compare (``_get``: a copy, validated too),
and then leaves the property unset when the two are equal. A widget passes
every synced parameter, and most are at their Bokeh defaults (the generated
widgets take Bokeh's defaults as theirs): an IntSlider passed 16 values of
which 5 were kept, and took twice as long to build as with those 5.

:func:`new_model` drops an argument only where Bokeh would have dropped it:
the property is a plain one (no alias, no dataspec), its class default is a
literal (None, a bool, number or string, or an empty list or dict) and the
value is of the same type and equal to it. The model that comes out is the
same (``tests/unit/test_model_defaults.py`` compares every widget and pane).
"""
from __future__ import annotations

import functools
from typing import Any

from bokeh.core.property.descriptors import PropertyDescriptor
from bokeh.model import Model

__all__ = ["new_model", "without_defaults"]

_LITERALS = (type(None), bool, int, float, str)
_NO_DEFAULT = object()


def new_model[M: Model](cls: type[M], **props: Any) -> M:
    """``cls(**props)``, without the arguments equal to the class's literal defaults."""
    return cls(**without_defaults(cls, props))


def without_defaults(cls: type[Model], props: dict[str, Any]) -> dict[str, Any]:
    """``props`` without the values Bokeh would leave unset because they equal the class's default."""
    defaults = _literal_defaults(cls)
    return {name: value for name, value in props.items() if not _is_default(defaults.get(name, _NO_DEFAULT), value)}


def _is_default(default: Any, value: Any) -> bool:
    if default is _NO_DEFAULT or type(value) is not type(default):
        return False
    if isinstance(value, (list, dict)):
        return not value  # the default is an empty container
    return bool(value == default)  # NaN is never equal: passed on


@functools.lru_cache(maxsize=512)
def _literal_defaults(cls: type[Model]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for name in cls.properties():
        descriptor = cls.lookup(name)
        if type(descriptor) is not PropertyDescriptor:
            continue  # aliases, dataspecs, units specs: their values are transformed when set
        default = descriptor.class_default(cls, no_eval=True)
        if type(default) in _LITERALS:
            defaults[name] = default
        elif isinstance(default, (list, dict)) and not default:  # Bokeh keeps them as PropertyValueList/Dict
            defaults[name] = [] if isinstance(default, list) else {}
    return defaults
