"""Every tutorial notebook is also an app: ``kernelstate serve notebooks/`` serves each one.

One real ``kernelstate serve notebooks/`` process (what ``make serve`` runs);
each notebook's page must answer 200 and its session must render the small
demo the notebook marks ``.servable()`` (its tutorial-only cells are guarded
by ``if not ks.state.served:``), and the server must log no error.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import bokeh.models as bm
import pytest
from tornado.httpclient import AsyncHTTPClient

from kernelstate.testing import ProtocolClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
STEMS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))

# What each served notebook's page must show (text of its Document).
EXPECTED = {
    "index": ["kernelstate tutorials", 'href="./01-sessions-and-state"', 'href="./04-jupyter"'],
    "01-sessions-and-state": ["A tab is a session", "No clicks yet.", "Open this page in a second tab"],
    "02-scheduling": ["Scheduling", "it is now", "A job on the thread pool"],
    "03-reuse-sessions": ["Temperature", "Humidity"],
    "04-jupyter": ["Celsius", "°F"],
    "05-components-and-reactivity": ["Components and reactivity", "Filters", "31 days", "price"],
    "06-users-and-access": ["Users and access", "Signed in as: nobody"],
    "07-scaling-out": ["Scaling out", "Threshold", "restart the server"],
    "08-work-across-processes": ["Work across processes", "no news yet", "Publish news"],
}


@pytest.fixture(scope="module")
def notebook_server(request: pytest.FixtureRequest) -> Any:
    from kernelstate.testing.plugin import start_serve_process

    proc = start_serve_process(str(NOTEBOOKS))
    request.addfinalizer(proc.stop)
    return proc


def test_every_notebook_has_an_expectation() -> None:
    """A new notebook must say here what its served page shows."""
    assert sorted(EXPECTED) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_served_notebook_renders_its_demo(notebook_server: Any, stem: str) -> None:
    """GET /<notebook> is 200 and the session's Document shows the notebook's demo."""
    url = notebook_server.url.rstrip("/") + "/" + stem

    async def main() -> str:
        async with ProtocolClient(url) as tab:
            assert tab.status == 200
            return tab.text()

    text = asyncio.run(main())
    for expected in EXPECTED[stem]:
        assert expected in text, f"{stem}: {expected!r} not in {text[:500]!r}"


def test_served_notebooks_are_interactive(notebook_server: Any) -> None:
    """The demos work as apps: a click counts, the clock ticks, the city is in the title."""
    base = notebook_server.url.rstrip("/")

    async def main() -> None:
        async with ProtocolClient(base + "/01-sessions-and-state") as one, \
                   ProtocolClient(base + "/01-sessions-and-state") as two:
            await one.click(one.find(type=bm.Button, label="Click me")[0])
            await one.wait_for(lambda: "Clicks in this tab: 1" in one.text())
            await asyncio.sleep(0.1)
            assert "No clicks yet." in two.text()
        async with ProtocolClient(base + "/02-scheduling") as clock:
            first = re.search(r"it is now [\d:.]+", clock.text())
            assert first is not None
            await clock.wait_for(lambda: first.group(0) not in clock.text(), timeout=5)
        async with ProtocolClient(base + "/03-reuse-sessions?city=Lima") as lima:
            assert "<title>Weather in Lima</title>" in lima.html
        page = await AsyncHTTPClient().fetch(notebook_server.url)
        for stem in STEMS:
            assert f"/{stem}" in page.body.decode()

    asyncio.run(main())
    log = notebook_server.log_text()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]


def test_served_08_message_reaches_every_tab(notebook_server: Any) -> None:
    """Tutorial 8 served: a click in one tab publishes, and the headline changes in both tabs."""
    url = notebook_server.url.rstrip("/") + "/08-work-across-processes"

    async def main() -> None:
        async with ProtocolClient(url) as one, ProtocolClient(url) as two:
            await one.click(one.find(type=bm.Button, label="Publish news")[0])
            for tab in (one, two):
                await tab.wait_for(lambda tab=tab: "news: edition 1" in tab.text(), timeout=10)

    asyncio.run(main())
