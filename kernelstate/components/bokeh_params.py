"""Typed ``param`` parameters from Bokeh property descriptors.

The generated widgets (``widget_table.py``) expose a Bokeh model's properties
as parameters of the same meaning: ``Bool`` becomes ``param.Boolean``,
``Int`` ``param.Integer`` (with the bounds of ``Positive``/``NonNegative``/
``Interval``), ``Enum`` a ``param.Selector`` over the allowed values, and so
on, with Bokeh's default as the default and ``Nullable`` as ``allow_None``.
Properties whose type has no useful param counterpart (``Either`` of
several kinds, instances) become a plain ``param.Parameter``.
"""
from __future__ import annotations

from typing import Any

import param
from bokeh.core.property.descriptors import PropertyDescriptor
from bokeh.model import Model

_WRAPPERS = {"Required", "Readonly", "NotSerialized"}


def _unwrap(prop: Any) -> tuple[Any, bool, tuple[float | None, float | None]]:
    allow_none = False
    bounds: tuple[float | None, float | None] = (None, None)
    while True:
        kind = type(prop).__name__
        if kind == "Nullable":
            allow_none = True
        elif kind == "Positive":
            bounds = (1, None)
        elif kind == "NonNegative":
            bounds = (0, None)
        elif kind == "Interval":
            end = prop.end if prop.end != float("inf") else None
            bounds = (prop.start, end)
        elif kind not in _WRAPPERS:
            return prop, allow_none, bounds
        prop = prop.type_params[0]


def bokeh_default(model: type[Model], name: str) -> Any:
    """The class default of ``model.name``, or None where Bokeh requires a value."""
    descriptor: PropertyDescriptor[Any] = model.lookup(name)
    value = descriptor.class_default(model)
    return None if type(value).__name__ == "UndefinedType" else value


def parameter_for(model: type[Model], name: str, doc: str | None = None) -> param.Parameter[Any]:
    """A param.Parameter of the type and default of Bokeh property ``model.name``."""
    prop, allow_none, bounds = _unwrap(model.lookup(name).property)
    default = bokeh_default(model, name)
    if default is None:
        allow_none = True
    kind = type(prop).__name__
    doc = doc or f"Bokeh {model.__name__}.{name}"
    if kind == "Bool":
        return _make("Boolean", default=default, allow_None=allow_none, doc=doc)
    if kind == "Int":
        return _make("Integer", default=default, allow_None=allow_none, bounds=_bounds(bounds), doc=doc)
    if kind == "Float":
        return _make("Number", default=default, allow_None=allow_none, bounds=_bounds(bounds), doc=doc)
    if kind in ("String", "Regex", "Color", "ColorHex"):
        return _make("String", default=default, allow_None=allow_none, doc=doc)
    if kind == "Enum":
        objects = list(prop.allowed_values)
        return _make("Selector", default=default, objects=objects + ([None] if allow_none else []), doc=doc)
    if kind in ("List", "Seq"):
        return _make("List", default=list(default) if default is not None else None, allow_None=allow_none, doc=doc)
    return _make("Parameter", default=default, allow_None=allow_none, doc=doc)


def _make(kind: str, **kwargs: Any) -> param.Parameter[Any]:
    parameter: param.Parameter[Any] = getattr(param, kind)(**kwargs)
    return parameter


def _bounds(bounds: tuple[float | None, float | None]) -> tuple[float | None, float | None] | None:
    return None if bounds == (None, None) else bounds
