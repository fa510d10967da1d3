"""kernelstate: session-backed interactive apps for a standalone server, Jupyter and kernels.

``import kernelstate as ks`` is cheap: submodules load on first attribute
access (PEP 562), so ``%load_ext kernelstate`` does not import Bokeh.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_ATTRS = {
    "config": ("_config", "config"),
    "extension": ("_config", "extension"),
    "state": ("_state", "state"),
    "serve": ("server.server", "serve"),
    "Server": ("server.server", "Server"),
    "Column": ("components.layout", "Column"),
    "Row": ("components.layout", "Row"),
    "FlexBox": ("components.layout", "FlexBox"),
    "Card": ("components.layout", "Card"),
    "GridBox": ("components.layout", "GridBox"),
    "Spacer": ("components.layout", "Spacer"),
    "Divider": ("components.layout", "Divider"),
    "Tabs": ("components.tabs", "Tabs"),
    "Accordion": ("components.tabs", "Accordion"),
    "Session": ("session", "Session"),
    "bind": ("components.reactive", "bind"),
    "depends": ("components.reactive", "depends"),
    "cancellation": ("cluster.cancellation", "cancellation"),
}
_MODULES = ("pane", "widgets", "indicators", "template", "testing", "errors")

__all__ = ["__version__", *_ATTRS, *_MODULES, "load_ipython_extension"]

if TYPE_CHECKING:
    from . import errors, indicators, pane, template, testing, widgets
    from ._config import config, extension
    from ._state import state
    from .cluster.cancellation import cancellation
    from .components.layout import Card, Column, Divider, FlexBox, GridBox, Row, Spacer
    from .components.reactive import bind, depends
    from .components.tabs import Accordion, Tabs
    from .server.server import Server, serve
    from .session import Session


def __getattr__(name: str) -> Any:
    if name in _ATTRS:
        module, attr = _ATTRS[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'kernelstate' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kernelstate``: registers ``%serve`` / ``%%serve``."""
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)
