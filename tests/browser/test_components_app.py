"""The example dashboard in real Chromium: drag a date range, edit a MultiChoice, pick a table row, switch tabs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser
DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "dashboard.py"
ROWS = re.compile(r"(\d+) rows")


def summary(page: Any) -> str:
    return str(page.get_by_text(ROWS).first.inner_text())


def rows(page: Any) -> int:
    match = ROWS.search(summary(page))
    assert match is not None, summary(page)
    return int(match.group(1))


def wait_rows(page: Any, predicate: Any, what: str) -> int:
    for _ in range(100):
        n = rows(page)
        if predicate(n):
            return n
        page.wait_for_timeout(100)
    raise AssertionError(f"{what}: the summary still says {summary(page)!r}")


def test_dashboard_widgets_drive_the_bound_outputs(page: Any, ks_server: Any, request: Any, tmp_path: Path) -> None:
    """Dragging, clicking and typing in the served dashboard change the bound summary and plot."""
    pytest.importorskip("pandas")
    server = ks_server(DASHBOARD)
    try:
        page.goto(server.url + "dashboard?refresh_ms=0")
        page.get_by_text("240 rows").wait_for(timeout=20000)

        # MultiChoice: remove one region's tag, then type it back
        page.locator(".choices__button").first.click()
        wait_rows(page, lambda n: n == 180, "removing a region")
        page.locator("input.choices__input").first.click()
        page.keyboard.type("nor")
        page.keyboard.press("Enter")
        wait_rows(page, lambda n: n == 240, "typing a region back")

        # DateRangeSlider: drag the upper handle to the left
        handle = page.locator(".noUi-handle-upper").first
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 60, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        wait_rows(page, lambda n: n < 240, "dragging the date range")

        # DataTable: clicking a row selects it
        page.locator(".slick-cell").first.click()
        page.get_by_text(re.compile("1 selected in the table")).wait_for(timeout=10000)

        # Tabs: the Plot tab shows the bound figure, re-rendered per change
        page.get_by_text("Plot", exact=True).click()
        page.locator("canvas").first.wait_for(state="visible", timeout=10000)
        assert page.locator(".bk-tab.bk-active").first.inner_text() == "Plot"
        page.locator(".choices__button").first.click()  # the summary and the plot re-run for the new filter
        wait_rows(page, lambda n: n < 180, "removing a region with the plot shown")
        page.locator("canvas").first.wait_for(state="visible", timeout=10000)
        assert not page.errors, page.errors
    except Exception:
        shot = tmp_path / "dashboard-failure.png"
        page.screenshot(path=str(shot), full_page=True)
        request.node.user_properties.append(("screenshot", str(shot)))
        raise
