"""R13: a server restarted under open tabs tells them to reload, or, with a session store, carries them on.

- SIGTERM: every open tab gets close 4503 "server stopped: reload the page" at once;
- SIGTERM with ``--session-store``: shutdown is not destroy. Every tab gets close 1012
  ("server restarting: reconnecting") at once, its record is kept, and the restarted server
  rebuilds the session when the tab reconnects (kernelstate.store; tests/scaleout/test_store*.py);
- SIGKILL (a crash): every tab's connection ends at once (the page shows "connection lost");
- the restarted server (same port, same ``KERNELSTATE_SECRET_KEY``) answers an old tab's
  reconnect with 4404 "session expired: reload the page"; with a new key, 403;
- a tab that reconnects within the session lifetime keeps its session; after it, it is told to
  reload within the check interval.
"""
from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import TextInput

from kernelstate.testing import ClosedError, ProtocolClient

from .conftest import fetch, run

APP = '''"""Restart"""
import kernelstate as ks

text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
text.param.watch(lambda e: setattr(echo, "object", f"echo {e.new}"), "value")
ks.Column(text, echo).servable()
'''
SECRET = "reliability-r13-secret-0123456789abcdef"


def start(ks_serve_process: Any, tmp_path: Path, *args: str, secret: str = SECRET) -> tuple[Any, str]:
    script = tmp_path / "restart.py"
    script.write_text(APP)
    proc = ks_serve_process(str(script), *args, env={"KERNELSTATE_SECRET_KEY": secret})
    return proc, proc.url.rstrip("/") + "/restart"


async def open_tabs(url: str, n: int) -> list[ProtocolClient]:
    tabs = []
    for i in range(n):
        tab = ProtocolClient(url, timeout=5)
        await tab.fetch_page()
        await tab.connect()
        await tab.set(tab.find(TextInput)[0], "value", f"tab {i}")
        tabs.append(tab)
    return tabs


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_restart_under_open_tabs(ks_serve_process: Any, tmp_path: Path, figures: Any, how: str) -> None:
    """Stop (or kill) the server under 5 tabs, start it again on the same port: every tab learns to reload."""
    proc, url = start(ks_serve_process, tmp_path)
    port = proc.port

    async def main() -> None:
        tabs = await open_tabs(url, 5)
        t0 = time.monotonic()
        proc.proc.send_signal(getattr(signal, how))
        closes = await asyncio.gather(*[tab.wait_closed(5) for tab in tabs])
        noticed = time.monotonic() - t0
        if how == "SIGTERM":
            assert all(code == 4503 and "reload" in (reason or "") for code, reason in closes), closes
        else:
            assert all(code in (None, 1006) for code, _ in closes), closes
        figures(f"{how}: all 5 tabs told within s", f"{noticed:.2f}")
        assert noticed < 2.0
        proc.proc.wait(10)

        again, _ = start(ks_serve_process, tmp_path, "--port", str(port))
        assert again.port == port
        for tab in tabs:
            retry = ProtocolClient(url, timeout=5)
            retry.token = tab.token
            t1 = time.monotonic()
            with pytest.raises(ClosedError) as err:
                await retry.connect()
            assert err.value.code == 4404 and "reload" in (err.value.reason or "")
            assert time.monotonic() - t1 < 2.0
        fresh = ProtocolClient(url)
        async with fresh:
            await fresh.set(fresh.find(TextInput)[0], "value", "after restart")
            await fresh.wait_for(lambda: "echo after restart" in fresh.text())

    run(main)


def test_sigterm_with_a_session_store_detaches_sessions(ks_serve_process: Any, tmp_path: Path) -> None:
    """With --session-store, SIGTERM closes tabs with 1012 and the restarted server gives each its session back."""
    store = ("--session-store", f"sqlite:///{tmp_path / 'sessions.sqlite'}")
    proc, url = start(ks_serve_process, tmp_path, *store)
    port = proc.port

    async def main() -> None:
        tabs = await open_tabs(url, 3)
        await asyncio.sleep(0.5)  # the records are written within a debounce interval
        proc.proc.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*[tab.wait_closed(5) for tab in tabs])
        assert all(code == 1012 and "reconnecting" in (reason or "") for code, reason in closes), closes
        proc.proc.wait(10)
        start(ks_serve_process, tmp_path, *store, "--port", str(port))
        for i, tab in enumerate(tabs):
            back = ProtocolClient(url, timeout=5)
            back.token = tab.token
            await back.connect()
            assert back.find(TextInput)[0].value == f"tab {i}" and f"echo tab {i}" in back.text()
            await back.close()

    run(main)


def test_restart_with_a_new_key_refuses_old_tokens(ks_serve_process: Any, tmp_path: Path) -> None:
    """A restarted server with another key answers old tokens with 403 (the page shows its reload banner)."""
    proc, url = start(ks_serve_process, tmp_path)
    port = proc.port

    async def main() -> None:
        tabs = await open_tabs(url, 1)
        proc.stop()
        await tabs[0].wait_closed(5)
        start(ks_serve_process, tmp_path, "--port", str(port), secret="another-key-" + "x" * 30)
        retry = ProtocolClient(url, timeout=5)
        retry.token = tabs[0].token
        with pytest.raises(Exception, match="403"):
            await retry.connect()

    run(main)


def test_reconnect_keeps_the_session_until_its_lifetime(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """A dropped tab that comes back within the lifetime finds its state; later it is told to reload within ~2 s."""
    proc, url = start(ks_serve_process, tmp_path, "--unused-session-lifetime", "1000", "--check-unused-sessions", "200")

    async def main() -> None:
        (tab,) = await open_tabs(url, 1)
        await tab.close()
        await asyncio.sleep(0.3)
        back = ProtocolClient(url, timeout=5)
        back.token = tab.token
        await back.connect()
        assert back.find(TextInput)[0].value == "tab 0" and "echo tab 0" in back.text()
        await back.close()
        t0 = time.monotonic()
        while json.loads((await fetch(proc.url.rstrip("/") + "/liveness")).body)["sessions"] > 0:
            assert time.monotonic() - t0 < 10, "the idle session was never reaped"
            await asyncio.sleep(0.05)
        late = ProtocolClient(url, timeout=5)
        late.token = tab.token
        with pytest.raises(ClosedError) as err:
            await late.connect()
        assert err.value.code == 4404 and "reload" in (err.value.reason or "")
        told = time.monotonic() - t0
        figures("idle session reaped after s (lifetime 1 s, check 0.2 s)", f"{told:.2f}")
        assert told <= 1.0 + 0.2 + 2.0

    run(main)
