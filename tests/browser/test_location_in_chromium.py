"""ks.state.location in real Chromium: the URL follows the widget (replaceState), the widget follows the URL
(the page's query on load, back/forward within the page), and a reload opens what the URL now says."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import kernelstate as ks

pytestmark = pytest.mark.browser


def app() -> Any:
    search = ks.widgets.TextInput(name="Search")
    shown = ks.pane.Markdown("searching for nothing")
    search.param.watch(lambda event: setattr(shown, "object", f"searching for {event.new or 'nothing'}"), "value")
    ks.state.location.sync(search, {"value": "q"})
    shown.object = f"searching for {search.value or 'nothing'}"
    return ks.Column(search, shown)


def search_box(page: Any) -> Any:
    return page.locator("input.bk-input >> visible=true").first


def type_search(page: Any, text: str) -> None:
    box = search_box(page)
    box.fill(text)
    box.press("Enter")


def test_url_and_widget_follow_each_other(page: Any, ks_server: Any, request: Any, tmp_path: Path) -> None:
    """/app?q=hello shows hello; typing changes page.url without a reload; back/forward move the widget."""
    server = ks_server({"app": app})
    try:
        page.goto(server.url + "app?q=hello&keep=1")
        page.get_by_text("searching for hello").wait_for(timeout=20000)
        assert search_box(page).input_value() == "hello"
        page.evaluate("window.notReloaded = true")
        entries = page.evaluate("history.length")

        type_search(page, "world")
        page.wait_for_url(re.compile(r"/app\?q=world&keep=1$"), timeout=10000)
        page.get_by_text("searching for world").wait_for(timeout=10000)
        assert page.evaluate("window.notReloaded") is True  # replaceState, not a navigation
        assert page.evaluate("history.length") == entries    # and no new history entry

        # A fragment link makes a second history entry within the page; typing then rewrites that entry.
        page.evaluate("location.hash = 'results'")
        type_search(page, "again")
        page.wait_for_url(re.compile(r"/app\?q=again&keep=1#results$"), timeout=10000)

        page.go_back()  # popstate: the page runtime tells the server, the widget follows
        page.wait_for_url(re.compile(r"/app\?q=world&keep=1$"), timeout=10000)
        page.get_by_text("searching for world").wait_for(timeout=10000)
        assert search_box(page).input_value() == "world"
        page.go_forward()
        page.get_by_text("searching for again").wait_for(timeout=10000)
        assert search_box(page).input_value() == "again"
        assert page.evaluate("window.notReloaded") is True

        page.reload()  # the URL is the bookmark: a new session opens with it
        page.get_by_text("searching for again").wait_for(timeout=20000)
        assert search_box(page).input_value() == "again"
        assert not page.errors, page.errors
    except Exception:
        shot = tmp_path / "location-failure.png"
        page.screenshot(path=str(shot), full_page=True)
        request.node.user_properties.append(("screenshot", str(shot)))
        raise
