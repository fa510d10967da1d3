"""Global loading spinner and the session-expired banner, in real Chromium."""
from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.request import urlopen

import pytest

import kernelstate as ks

pytestmark = pytest.mark.browser


async def slow_app() -> Any:
    await asyncio.sleep(1.5)
    return ks.pane.Markdown("ready now")


@pytest.mark.parametrize("template", ["basic", "material", "bootstrap"])
def test_spinner_until_rendered_then_gone(page: Any, ks_server: Any, template: str) -> None:
    """With --global-loading-spinner the overlay shows from the first byte until the Document has rendered."""
    server = ks_server(slow_app, reuse_sessions=True, global_loading_spinner=True)
    ks.config.template = template
    try:
        urlopen(server.url).read()  # first render fills the reuse cache
        page.goto(server.url, wait_until="domcontentloaded")
        assert page.locator("#ks-loading-spinner").count() == 1
        assert page.locator("#ks-loading-spinner").is_visible()
        page.wait_for_selector("text=ready now", timeout=15000)
        page.wait_for_selector("#ks-loading-spinner", state="detached", timeout=5000)
    finally:
        ks.config.template = "basic"
    assert not page.errors


def test_expired_session_shows_reload_banner(page: Any, ks_server: Any) -> None:
    """When the session is gone (server stopped), the page shows a banner saying to reload, not a blank page."""
    server = ks_server(lambda: ks.pane.Markdown("alive"))
    page.goto(server.url)
    page.wait_for_selector("text=alive", timeout=15000)
    server.stop()
    page.wait_for_selector("#ks-banner", timeout=10000)
    assert "reload" in page.locator("#ks-banner").inner_text().lower()


def test_reuse_session_page_is_interactive(page: Any, ks_server: Any) -> None:
    """A cached page gets its own live session when the browser connects."""
    def app() -> Any:
        button = ks.widgets.Button(name="Press")
        out = ks.pane.Markdown("not pressed")
        button.on_click(lambda e: setattr(out, "object", f"pressed {button.clicks}"))
        return ks.Column(button, out)

    server = ks_server(app, reuse_sessions=True)
    urlopen(server.url).read()
    page.goto(server.url)
    page.get_by_role("button", name="Press").click()
    page.wait_for_selector("text=pressed 1", timeout=10000)
    assert server.reuse.hits >= 1
    deadline = time.time() + 5
    while len(server.manager) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(server.manager) == 2
