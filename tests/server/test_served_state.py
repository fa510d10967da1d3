"""Issue 14 ("also wanted"): PeriodicCallback and ks.state.headers/cookies/log in served sessions,
through a real server and protocol clients (the unit tests cover them with a fake clock)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bokeh.models import Button

import kernelstate as ks
from kernelstate.testing import ProtocolClient


def test_periodic_count_timeout_start_stop_and_period(ks_server: Any) -> None:
    """count= stops after N ticks, timeout= stops after its window, start=False waits for start(),
    stop() stops, and a new period takes effect, each in its own served session."""
    made: list[dict[str, Any]] = []

    def app() -> Any:
        counts = ks.pane.Str("")
        cbs = {
            "count": ks.state.add_periodic_callback(lambda: None, period=30, count=3),
            "timeout": ks.state.add_periodic_callback(lambda: None, period=30, timeout=200),
            "later": ks.state.add_periodic_callback(lambda: None, period=30, start=False),
        }
        start, stop, faster = (ks.widgets.Button(name=n) for n in ("start", "stop", "faster"))
        start.on_click(lambda e: cbs["later"].start())
        stop.on_click(lambda e: cbs["later"].stop())
        faster.on_click(lambda e: setattr(cbs["later"], "period", 10))
        show = ks.state.add_periodic_callback(
            lambda: setattr(counts, "object", " ".join(f"{k}={c.counter}/{c.running}" for k, c in cbs.items())),
            period=20)
        made.append({**cbs, "show": show, "session": ks.state.session_id})
        return ks.Column(counts, ks.Row(start, stop, faster))

    server = ks_server(app)

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            cbs = made[-1]
            await tab.wait_for(lambda: "count=3/False" in tab.text(), timeout=20)
            await tab.wait_for(lambda: "timeout=" in tab.text() and "/False" in tab.text().split("timeout=")[1].split()[0],
                               timeout=20)
            assert 1 <= cbs["timeout"].counter <= 7          # about 200 ms of 30 ms ticks; not a timing test
            assert cbs["later"].counter == 0 and not cbs["later"].running
            await tab.click(tab.find(Button, label="start")[0])
            await tab.wait_for(lambda: cbs["later"].counter >= 2, timeout=20)
            await tab.click(tab.find(Button, label="faster")[0])
            assert cbs["later"].period == 10 and cbs["later"].running
            await tab.click(tab.find(Button, label="stop")[0])
            stopped_at = cbs["later"].counter
            await asyncio.sleep(0.3)
            assert not cbs["later"].running and cbs["later"].counter == stopped_at
        # a second tab has its own callbacks
        async with ProtocolClient(server.url) as other:
            assert made[-1]["session"] == other.session_id and made[-1]["later"] is not cbs["later"]

    asyncio.run(main())


def test_headers_cookies_and_log_in_a_served_session(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Each tab sees its own request headers and cookies; ks.state.log prefixes the session id."""
    def app() -> Any:
        team = ks.state.headers.get("X-Team", "none")
        theme = ks.state.cookies.get("theme", "light")
        ks.state.log(f"built for {team}", level="warning")
        return ks.pane.Markdown(f"team {team}, theme {theme}, cookies {sorted(ks.state.cookies)}")

    server = ks_server(app)

    async def main() -> tuple[str, str]:
        async with ProtocolClient(server.url, headers={"X-Team": "red", "Cookie": "theme=dark; lang=fr"}) as red, \
                ProtocolClient(server.url, headers={"X-Team": "blue"}) as blue:
            assert "team red, theme dark, cookies ['lang', 'theme']" in red.text()
            assert "team blue, theme light, cookies []" in blue.text()
            return red.session_id, blue.session_id

    with caplog.at_level(logging.WARNING, "kernelstate.state"):
        red_id, blue_id = asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records if r.name == "kernelstate.state"]
    assert f"session {red_id}: built for red" in messages and f"session {blue_id}: built for blue" in messages
