"""A server under a prefix works in Chromium whether or not the URL has the prefix's trailing slash."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

import kernelstate as ks

pytestmark = pytest.mark.browser


def app() -> Any:
    button = ks.widgets.Button(name="Press")
    label = ks.pane.Str("not pressed")
    button.on_click(lambda event: setattr(label, "object", f"pressed, args={ks.state.session_args.get('q')}"))
    return ks.Column(button, label)


@pytest.mark.parametrize("apps", [app, {"one": app, "two": app}], ids=["one-app-at-root", "index"])
def test_prefix_without_trailing_slash(page: Any, ks_server: Any, apps: Any) -> None:
    """``GET /foo?q=1`` redirects to ``/foo/?q=1``; the page (or the index and an app from it) then runs."""
    server = ks_server(apps, prefix="/foo")
    base = server.url.rstrip("/")          # http://localhost:PORT/foo
    assert base.endswith("/foo")
    page.goto(base + "?q=1")
    if isinstance(apps, dict):
        assert urlsplit(page.url).path == "/foo/"
        page.get_by_role("link", name="one").click()
        page.wait_for_url("**/foo/one")
    else:
        assert urlsplit(page.url).path == "/foo/" and urlsplit(page.url).query == "q=1"
    page.get_by_role("button", name="Press").click(timeout=15000)
    expected = "pressed, args=None" if isinstance(apps, dict) else "pressed, args=[b'1']"
    page.wait_for_selector(f"text={expected}", timeout=10000)
    assert not page.errors
