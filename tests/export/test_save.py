"""``component.save(path)``: a standalone page that opens from ``file://`` with the network off (issue 19 item 4)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from bokeh.plotting import figure
from offline_browser import REMOTE_RESOURCE, OfflinePage

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.session import Session
from kernelstate.standalone import bokehjs_inline


def _components() -> tuple[ks.widgets.IntSlider, ks.Column]:
    level = ks.widgets.IntSlider(name="level", start=0, end=10, value=7)
    words = ks.widgets.TextInput(name="words", value="tulips")
    chart = figure(height=250, width=400, title="prices", toolbar_location=None)
    chart.line([0, 1, 2, 3], [10.0, 10.5, 10.2, 11.0], line_width=4, color="#1f3fff")
    return level, ks.Column("## Saved offline", level, words, ks.pane.Bokeh(chart))


def test_saved_page_shows_widgets_and_plot_offline_in_the_sessions_template(
        tmp_path: Path, open_offline: Callable[[Path], OfflinePage]) -> None:
    level, page_layout = _components()
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


def _embedded_docs(markup: str) -> list[dict[str, object]]:
    found = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', markup, flags=re.S)
    return [json.loads(text) for text in found]


def test_save_writes_the_state_at_the_call_and_the_default_look(tmp_path: Path) -> None:
    level, page_layout = _components()
    first = page_layout.save(tmp_path / "first.html", title="Levels")
    level.value = 3
    second = page_layout.save(str(tmp_path / "second.html"), template="bootstrap")

    def slider_values(path: Path) -> list[object]:
        text = json.dumps(_embedded_docs(path.read_text(encoding="utf-8")))
        return [int(v) for v in re.findall(r'"name": "Slider".*?"value": (\d+)', text)]

    assert slider_values(first) == [7] and slider_values(second) == [3]
    assert "<title>Levels</title>" in first.read_text(encoding="utf-8")
    assert 'class="ks-body ks-template-bootstrap"' in second.read_text(encoding="utf-8")


def test_save_refuses_an_unknown_template_and_a_directory(tmp_path: Path) -> None:
    _, page_layout = _components()
    with pytest.raises(ValueError, match="unknown template 'fancy'; choose one of basic, material, bootstrap"):
        page_layout.save(tmp_path / "page.html", template="fancy")
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        page_layout.save(tmp_path)
    assert list(tmp_path.iterdir()) == []
