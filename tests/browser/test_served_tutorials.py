"""What ``make serve`` serves (``kernelstate serve notebooks/ examples/``), in real headless Chromium.

The index page lists every app; following each link renders that app with
stock BokehJS, with no JavaScript error and no request leaving 127.0.0.1 (no
CDN: every asset is served by kernelstate itself).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
APPS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) + sorted(
    p.stem for p in (ROOT / "examples").glob("*.py"))

# Text each app shows once BokehJS has rendered its Document.
VISIBLE = {
    "index": "kernelstate tutorials",
    "01-sessions-and-state": "Click me",
    "02-scheduling": "it is now",
    "03-reuse-sessions": "Humidity",
    "04-jupyter": "°F",
    "05-components-and-reactivity": "Components and reactivity",
    "06-users-and-access": "Users and access",
    "07-scaling-out": "Threshold",
    "08-work-across-processes": "Publish news",
    "converter": "Move the slider.",
    "dashboard": "Sales dashboard",
    "weather": "Weather in London",
}


@pytest.fixture(scope="module")
def tutorials(request: pytest.FixtureRequest) -> Any:
    from kernelstate.testing.plugin import start_serve_process

    proc = start_serve_process(str(ROOT / "notebooks"), str(ROOT / "examples"))
    request.addfinalizer(proc.stop)
    return proc


def test_every_app_has_an_expectation() -> None:
    assert sorted(VISIBLE) == sorted(APPS)


def test_index_links_every_app(page: Any, tutorials: Any) -> None:
    """GET / is the index of every app, each linked by its route."""
    page.goto(tutorials.url)
    hrefs = {a.get_attribute("href").strip("./") for a in page.locator("a").all()}
    assert set(APPS) - {"index"} <= hrefs | {"index"}, hrefs
    assert not page.errors


@pytest.mark.parametrize("stem", APPS)
def test_app_renders_in_chromium_with_local_assets_only(page: Any, tutorials: Any, stem: str) -> None:
    """Each app renders its content with BokehJS, no page error, every request to the server itself."""
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(tutorials.url.rstrip("/") + "/" + stem)
    page.wait_for_selector(f"text={VISIBLE[stem]}", timeout=20000)
    assert not page.errors, page.errors
    server = urlsplit(tutorials.url).netloc
    foreign = [u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")
               and urlsplit(u).netloc != server]
    assert not foreign, foreign
    assert any("bokeh" in u and u.endswith(".js") for u in requested), requested
