"""One behaviour spec, run in every host (see host_drivers.py for the hosts and the driver interface).

Which behaviour applies to which host (a dash: does not apply, and why):

=========================================  ==========  ===========  ======  ======
behaviour                                  standalone  jupyter-app  cell    widget
=========================================  ==========  ===========  ======  ======
sessions are isolated                      yes         yes          yes     yes
request args reach the app                 yes         yes          - (1)   - (1)
periodic callbacks die with the session    yes         yes          yes     yes
onload runs once the page has rendered     yes         yes          yes     yes
destroyed hooks run once, session current  yes         yes          yes     yes
a reconnect finds the same session         yes         yes          yes     - (3)
reuse: a cached page, app code on connect  yes         yes          - (2)   - (2)
=========================================  ==========  ===========  ======  ======

(1) no request: a cell's document is made by running code in the kernel;
(2) no page: a cell's output is not requested, so nothing is cached;
(3) a widget view's connection is the widget's comm: it does not drop and come back,
    and a view that leaves the page ends its output's document.

``NOT_APPLICABLE`` below is that table's dashes; the parametrization skips exactly
those, with the reason. The per-session parts of the app (``apps/spec.py``) run in
its "start" button's callback: a cell's own code runs in the kernel before its
document exists, while a callback runs with the session current in every host.
"""
from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bokeh.events import DocumentReady
from bokeh.models.widgets import Button, Slider
from host_drivers import HOSTS, HostDriver

from kernelstate.testing.client import ProtocolClient

NOT_APPLICABLE = {
    ("request args", "cell"): "a cell's document is made by running code in the kernel, not by a request: "
                              "it has no request args",
    ("reuse", "cell"): "a cell's output is not a requested page: there is nothing to cache and serve again",
    ("request args", "widget"): "a cell's document is made by running code in the kernel, not by a request: "
                                "it has no request args",
    ("reuse", "widget"): "a cell's output is not a requested page: there is nothing to cache and serve again",
    ("reconnect", "widget"): "a widget view's connection is the widget's comm, which does not drop and come back; "
                             "a view that leaves the page ends its output's document",
}
#: Long enough for a few of the app's 100 ms ticks; a check that something stopped, not a timing bound.
QUIET_S = 0.6


def hosts_for(behaviour: str) -> list[Any]:
    """The ``host_name`` parameters for a behaviour: every host, the inapplicable ones skipped with the reason."""
    return [pytest.param(h, id=h, marks=pytest.mark.skip(reason=NOT_APPLICABLE[behaviour, h]))
            if (behaviour, h) in NOT_APPLICABLE else pytest.param(h, id=h) for h in HOSTS]


def run(host: HostDriver, spec: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await spec()
        finally:
            await host.aclose()
    asyncio.run(main())


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.05)


def counter(tab: ProtocolClient) -> Slider:
    slider = tab.find(Slider)[0]
    assert isinstance(slider, Slider)
    return slider


async def start(tab: ProtocolClient) -> str:
    """Click the app's "start" button; the session id its callback saw (as ``ks.state.session_id``)."""
    await tab.click(tab.find(Button)[0])
    await tab.wait_for(lambda: "session ?" not in tab.text())
    m = re.search(r"session ([\w.-]+)", tab.text())
    assert m is not None, tab.text()
    return m.group(1)


def ticks(marks: Path, sid: str) -> int:
    path = marks / f"{sid}.ticks"
    return int(path.read_text()) if path.exists() else 0


@pytest.mark.parametrize("host_name", hosts_for("isolation"))
def test_sessions_are_isolated(host: HostDriver) -> None:
    """Two tabs get two sessions: a change in one is not seen in the other, and each callback sees its own session."""
    async def spec() -> None:
        a = await host.open("spec")
        b = await host.open("spec")
        assert a.session_id != b.session_id
        await a.set(counter(a), "value", 7)
        await a.wait_for(lambda: "echo 7" in a.text())
        await b.set(counter(b), "value", 3)
        await b.wait_for(lambda: "echo 3" in b.text())
        assert counter(a).value == 7 and "echo 7" in a.text() and "echo 3" not in a.text()
        assert counter(b).value == 3 and "echo 7" not in b.text()
        assert await start(a) == a.session_id
        assert await start(b) == b.session_id
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("request args"))
def test_request_args_reach_the_app(host: HostDriver) -> None:
    """The page request's query arguments are ``ks.state.session_args`` in the app's code."""
    async def spec() -> None:
        tab = await host.open("spec", {"name": "ada", "n": "1"})
        m = re.search(r"args (\{.*?\})</pre>", tab.text())
        assert m is not None, tab.text()
        assert json.loads(html.unescape(m.group(1))) == {"name": ["ada"], "n": ["1"]}
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("periodic callbacks"))
def test_periodic_callbacks_die_with_the_session(host: HostDriver, marks: Path) -> None:
    """A periodic callback started in a session runs until the session ends, and never after."""
    async def spec() -> None:
        tab = await host.open("spec")
        sid = await start(tab)
        await wait_until(lambda: ticks(marks, sid) >= 2, "the periodic callback ticked twice")
        await host.end_session(tab)
        await wait_until((marks / f"{sid}.destroyed").exists, "the session ended")
        stopped_at = ticks(marks, sid)
        await asyncio.sleep(QUIET_S)
        assert ticks(marks, sid) == stopped_at, "the periodic callback ran after its session ended"
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("onload"))
def test_onload_runs_once_the_page_has_rendered(host: HostDriver) -> None:
    """``ks.state.onload`` waits for the browser's "document ready", then runs with the session current."""
    async def spec() -> None:
        tab = await host.open("spec", send_ready=False)
        sid = await start(tab)
        assert "onload pending" in tab.text()
        await tab.send_event(DocumentReady())
        await tab.wait_for(lambda: f"onload {sid}" in tab.text())
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("destroyed hooks"))
def test_destroyed_hooks_run_once_with_the_session_current(host: HostDriver, marks: Path) -> None:
    """A session's ``on_session_destroyed`` hook runs once when it ends, with that session current."""
    async def spec() -> None:
        tab = await host.open("spec")
        sid = await start(tab)
        await host.end_session(tab)
        destroyed = marks / f"{sid}.destroyed"
        await wait_until(destroyed.exists, "the destroyed hook ran")
        await asyncio.sleep(QUIET_S)
        assert destroyed.read_text().splitlines() == [f"{sid} {sid}"]
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("reconnect"))
def test_a_reconnect_finds_the_same_session(host: HostDriver) -> None:
    """A tab that reconnects with its token gets its session back, state included, and it stays live."""
    async def spec() -> None:
        tab = await host.open("spec")
        await tab.set(counter(tab), "value", 5)
        await tab.wait_for(lambda: "echo 5" in tab.text())
        await tab.close()
        again = await host.reconnect(tab)
        assert again.session_id == tab.session_id
        assert counter(again).value == 5 and "echo 5" in again.text()
        await again.set(counter(again), "value", 6)
        await again.wait_for(lambda: "echo 6" in again.text())
    run(host, spec)


@pytest.mark.parametrize("host_name", hosts_for("reuse"))
def test_reuse_serves_a_cached_page_and_runs_the_app_on_connect(host: HostDriver, marks: Path) -> None:
    """With reuse on, a later page comes from the cache: its session's app code runs when its WebSocket connects."""
    async def spec() -> None:
        first = await host.open("reuse")
        await first.wait_for(lambda: f"rendered for {first.session_id}" in first.text())
        second = await host.open("reuse", connect=False)
        assert second.session_id != first.session_id
        assert not (marks / f"{second.session_id}.ran").exists(), "a cached page ran the app before its tab connected"
        await second.connect()
        await second.wait_for(lambda: f"rendered for {second.session_id}" in second.text())
        assert (marks / f"{second.session_id}.ran").exists()
    run(host, spec)
