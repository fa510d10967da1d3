"""A single process restarted with the machine-local session store: open tabs carry on.

SIGTERM detaches the sessions (records kept, tabs closed with 1012); the
process started again on the same port, with the key kept beside the store,
rebuilds each session when its tab reconnects: same values, derived views
follow, a new change round-trips. In Chromium too, with no reload prompt.
"""
from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Slider, TextInput

from kernelstate.testing import ProtocolClient

from .store_support import Processes, browser, reconnect, run

__all__ = ["browser"]  # the fixture, imported for this module

APP = '''"""Restartable"""
import kernelstate as ks

n = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
text = ks.widgets.TextInput(name="text", value="")
shown = ks.pane.Str("")
n.param.watch(lambda e: setattr(shown, "object", f"n is {e.new}"), "value")
text.param.watch(lambda e: setattr(shown, "object", f"text is {e.new}"), "value")
ks.Column(n, text, shown).servable()
'''


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    # No KERNELSTATE_SECRET_KEY: the key is kept in an owner-only file beside the store.
    processes = Processes({"KERNELSTATE_RUNTIME_DIR": str(tmp_path / "runtime"), "KERNELSTATE_SECRET_KEY": ""})
    yield processes
    processes.stop_all()


def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "restartable.py"
    path.write_text(APP)
    return path


def test_sigterm_restart_recovers_open_tabs(procs: Processes, tmp_path: Path) -> None:
    """5 tabs, SIGTERM, start again: every tab reconnects to its values and round-trips a change.

    The pages' tokens expire after 2 s, before the tabs reconnect: a record outlives its page's token.
    """
    app = app_file(tmp_path)
    first = procs.serve(app, "--session-store", "local", "--session-token-expiration", "2")
    url = first.url.rstrip("/") + "/restartable"
    key_file = tmp_path / "runtime" / "sessions.key"
    assert key_file.stat().st_mode & 0o077 == 0, "the key file is owner-only"

    async def main() -> None:
        tabs, started = [], time.monotonic()
        for i in range(5):
            tab = ProtocolClient(url, timeout=5)
            await tab.open()
            await tab.set(tab.find(Slider)[0], "value", i + 4)
            await tab.set(tab.find(TextInput)[0], "value", f"tab {i}")
            tabs.append(tab)
        await asyncio.sleep(0.5)  # the debounced record writes
        first.proc.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*[tab.wait_closed(5) for tab in tabs])
        assert all(code == 1012 for code, _ in closes), closes
        assert first.proc.wait(10) == 0
        again = procs.serve(app, "--session-store", "local", "--session-token-expiration", "2", "--port", str(first.port))
        await asyncio.sleep(max(0.0, started + 2.5 - time.monotonic()))
        for i, tab in enumerate(tabs):
            back = await reconnect(url, tab.token)
            assert back.find(Slider)[0].value == i + 4 and back.find(TextInput)[0].value == f"tab {i}"
            assert "text is tab" in back.text()  # watchers ran, in document order
            await back.set(back.find(Slider)[0], "value", 1)
            await back.wait_for(lambda b=back: "n is 1" in b.text())
            await back.close()
        assert again.log_text().count("restored session /restartable") == 5

    run(main)


def test_chromium_slider_survives_restart(procs: Processes, tmp_path: Path, browser: Any) -> None:
    """Move a slider in Chromium, SIGTERM the server, start it again: the page shows the moved slider, no reload banner."""
    app = app_file(tmp_path)
    first = procs.serve(app, "--session-store", "local")
    url = first.url.rstrip("/") + "/restartable"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_text("n: 3").first.wait_for(timeout=20000)
        page.locator(".noUi-handle").first.focus()
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        page.get_by_text("n is 7").first.wait_for(timeout=10000)
        time.sleep(0.5)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(10) == 0
        page.locator("#ks-banner").wait_for(timeout=5000)
        assert page.locator("#ks-banner button").count() == 0, "a restart is no reason to offer a reload"
        t0 = time.monotonic()
        again = procs.serve(app, "--session-store", "local", "--port", str(first.port))
        # BokehJS reconnects by itself (after 0, 2, 4... s) and replaces its document with the rebuilt one.
        page.locator("#ks-banner").wait_for(state="detached", timeout=30000)
        page.get_by_text("n is 7").first.wait_for(timeout=10000)
        assert page.get_by_text("n: 7").count() >= 1
        assert page.url == url
        page.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowLeft")
        page.get_by_text("n is 6").first.wait_for(timeout=10000)
        print(f"tab carried on {time.monotonic() - t0:.1f} s after the restart began")
        assert "restored session /restartable" in again.log_text()
        assert " ERROR " not in again.log_text() and " WARNING " not in again.log_text(), again.log_text()
    finally:
        context.close()
