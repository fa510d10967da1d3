"""``component.save(path)``: a standalone page that opens from ``file://`` with the network off (issue 19 item 4)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from offline_browser import REMOTE_RESOURCE, OfflinePage
from sample_page import sample_page

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.session import Session
from kernelstate.standalone import bokehjs_inline


def test_saved_page_shows_widgets_and_plot_offline_in_the_sessions_template(
        tmp_path: Path, open_offline: Callable[[Path], OfflinePage]) -> None:
    level, page_layout = sample_page()
    session = Session()   # ks.state as an app sees it: its own template, title and config
    try:
        with activate(session):
            ks.config.template = "material"
            ks.state.template.title = "Quarterly view"
            path = page_layout.save(tmp_path / "page.html")
    finally:
        session.destroy()
    assert level.views() == [], "the throwaway Document of save() is not kept as a view"
    markup = path.read_text(encoding="utf-8")
    assert REMOTE_RESOURCE.search(markup) is None
    assert markup.count(bokehjs_inline()[0][:200]) == 1

    shown = open_offline(path)
    page = shown.page
    shown.rendered(roots=1)
    assert page.title() == "Quarterly view"
    assert page.locator(".ks-title").inner_text() == "Quarterly view"
    assert "ks-template-material" in (page.locator("body").get_attribute("class") or "")
    assert page.locator("header").evaluate("h => getComputedStyle(h).backgroundColor") == "rgb(98, 0, 238)"
    page.get_by_text("Saved offline").wait_for()
    assert page.locator(".bk-slider-value").first.inner_text() == "7"
    assert page.locator("input[type=text]").first.input_value() == "tulips"
    assert shown.blue_pixels() >= 50, "the plot's line was drawn on a canvas"
    assert shown.remote_requests() == [], "the page fetched nothing from the network"
    assert shown.errors == []
