"""Startup work done once per process, so the first session does not pay for it."""
from __future__ import annotations

from ..template import TEMPLATE_NAMES
from ..web.page import TOKEN_PLACEHOLDER, PageOptions, render_message, render_page

_preloaded: list[bool] = []


def preload() -> None:
    """Pay once, at startup, for what the first session would otherwise pay for.

    Bokeh's ``bokeh.io`` (pulled in lazily by ``Document.add_root``), the
    Markdown renderer and the page templates are loaded.
    """
    if _preloaded:
        return
    _preloaded.append(True)
    import bokeh.io  # noqa: F401
    from bokeh.document import Document

    from ..components.pane import Markdown
    from ..loading import PageSpec

    Markdown("*warm*").get_model(Document())
    for name in TEMPLATE_NAMES:
        render_page(PageSpec("warm", name, [("p0", "main")]), TOKEN_PLACEHOLDER, PageOptions())
    render_message("warm", "warm", [])
