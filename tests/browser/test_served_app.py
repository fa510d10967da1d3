"""A served app in real headless Chromium with stock BokehJS."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "converter.py"


def test_click_button_updates_pane(page: Any, ks_server: Any) -> None:
    """Clicking a served button runs the Python callback and the pane text changes in the browser."""
    server = ks_server(EXAMPLE)
    page.goto(server.url + "converter")
    page.wait_for_selector("text=Move the slider.", timeout=15000)
    page.get_by_role("button", name="Reset").click()
    # Reset sets the slider to 20, which it already is: move it first through the keyboard.
    handle = page.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("text=20 → 21 °C", timeout=10000)
    page.get_by_role("button", name="Reset").click()
    page.wait_for_selector("text=21 → 20 °C", timeout=10000)
    assert page.title() == "Temperature converter"
    assert not page.errors


def test_onload_fires_when_browser_has_rendered(page: Any, ks_server: Any) -> None:
    """BokehJS's document-ready event reaches the server and runs ks.state.onload callbacks."""
    import kernelstate as ks

    def app() -> Any:
        md = ks.pane.Markdown("not loaded yet")
        ks.state.onload(lambda: setattr(md, "object", f"loaded={ks.state.loaded}"))
        return md

    server = ks_server(app)
    page.goto(server.url)
    page.wait_for_selector("text=loaded=True", timeout=15000)
