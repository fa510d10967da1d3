"""The widget transport in marimo (no Jupyter, no ipykernel), in headless Chromium.

``marimo run`` serves a notebook whose cell shows a kernelstate slider and a
bound pane; marimo renders the output's anywidget (inside a shadow root).
Dragging the slider updates the pane from the kernel; nothing is requested
outside 127.0.0.1.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from widget_browser import drag_to_end, foreign_requests, free_port, open_page

pytestmark = pytest.mark.browser
pytest.importorskip("marimo", reason="marimo is not installed")
pytest.importorskip("anywidget", reason="the widget transport needs anywidget (pip install kernelstate[widgets])")

NOTEBOOK = '''import marimo

app = marimo.App()


@app.cell
def _():
    import kernelstate as ks

    slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
    shown = ks.pane.Markdown("n is 3")
    slider.param.watch(lambda event: setattr(shown, "object", f"n is {event.new}"), "value")
    ks.Column(slider, shown)
    return


if __name__ == "__main__":
    app.run()
'''


@pytest.fixture(scope="module")
def marimo_url(tmp_path_factory: Any) -> Iterator[str]:
    root = tmp_path_factory.mktemp("marimo")
    (root / "nb.py").write_text(NOTEBOOK)
    port = free_port()
    log = root / "marimo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "marimo", "run", str(root / "nb.py"), "--headless", "--host", "127.0.0.1",
             "--port", str(port), "--no-token"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(root / "home")})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urlopen(url + "/", timeout=5).close()
                break
            except (URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("marimo did not start:\n" + Path(log).read_text(errors="replace")[-3000:])
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_marimo_output_is_live(marimo_url: str, browser: Any) -> None:
    """Drag the slider in a marimo app: the pane shows the kernel's answer."""
    page = open_page(browser)
    page.goto(marimo_url + "/")
    page.locator(".ks-widget[data-ks-live='1']").wait_for(timeout=60000)   # Playwright's CSS reaches into shadow roots
    live = page.locator(".ks-widget-roots")
    live.get_by_text("n is 3").wait_for(timeout=10000)
    drag_to_end(page, live)
    live.get_by_text("n is 10").wait_for(timeout=15000)
    assert foreign_requests(page, marimo_url) == []
    assert not [e for e in page.errors if "kernelstate" in e or "okeh" in e], page.errors
