"""``ks.widgets``: every Bokeh input widget as a component, under Panel's names.

The classes are generated from the declarative table in
``kernelstate/components/widget_table.py`` (see ``TABLE`` for the list and
``NOT_INPUTS`` for the Bokeh widgets deliberately left out, with reasons).
"""
from __future__ import annotations

from .components.download import FileDownload
from .components.table import DataTable
from .components.widget_table import WIDGETS
from .components.widgets import Widget

globals().update(WIDGETS)

__all__ = ["DataTable", "FileDownload", "Widget", *sorted(WIDGETS)]


def __getattr__(name: str) -> type[Widget]:
    # Reached only for names that are not generated; typed so that ``ks.widgets.X`` checks as a widget class.
    raise AttributeError(f"kernelstate.widgets has no widget {name!r}; the widgets are: {', '.join(sorted(WIDGETS))}")


def __dir__() -> list[str]:
    return sorted(__all__)
