"""ks.bind / ks.depends in served sessions: sync, async and async-generator functions, per session."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from bokeh.models import Column, Div, Slider

import kernelstate as ks
from kernelstate.session import current_session
from kernelstate.testing import ProtocolClient


def outputs(tab: ProtocolClient) -> list[Any]:
    return [m for m in tab.document.models if isinstance(m, Column) and "ks-output" in m.css_classes]


def output_text(tab: ProtocolClient) -> str:
    return " ".join(c.text for o in outputs(tab) for c in o.children if isinstance(c, Div))


def test_bind_sync_function_reruns_per_change_and_per_session(ks_server: Any) -> None:
    """A bound function re-runs on each change, once per view, with its own session active."""
    slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=2)
    runs: list[str] = []

    def describe(n: int, unit: str) -> str:
        runs.append(ks.state.session_id)
        return f"**{n} {unit}** for {ks.state.session_args.get('who', [b'?'])[0].decode()}"

    bound = ks.bind(describe, slider, unit="cm")
    assert bound() == "**2 cm** for ?"
    server = ks_server(lambda: ks.Column(slider, bound))

    async def main() -> None:
        async with ProtocolClient(server.url + "?who=ann") as ann, ProtocolClient(server.url + "?who=bob") as bob:
            assert "2 cm</strong> for ann" in output_text(ann) and "2 cm</strong> for bob" in output_text(bob)
            runs.clear()
            await ann.set(ann.find(Slider)[0], "value", 7)
            await ann.wait_for(lambda: "7 cm</strong> for ann" in output_text(ann))
            await bob.wait_for(lambda: "7 cm</strong> for bob" in output_text(bob))
            assert sorted(runs) == sorted([ann.session_id, bob.session_id])

    asyncio.run(main())


def test_async_function_shows_loading_then_result(ks_server: Any) -> None:
    """A coroutine function shows a loading state while it runs, then its result; a newer change wins."""
    text = ks.widgets.TextInput(value="a")
    release = threading.Event()

    async def slow(value: str) -> str:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return f"got {value}"

    server = ks_server(lambda: ks.Column(text, ks.bind(slow, text)))

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            await tab.wait_for(lambda: any("ks-loading" in o.css_classes for o in outputs(tab)))
            release.set()
            await tab.wait_for(lambda: "got a" in output_text(tab))
            assert not any("ks-loading" in o.css_classes for o in outputs(tab))
            release.clear()
            text.value = "b"
            await tab.wait_for(lambda: any("ks-loading" in o.css_classes for o in outputs(tab)))
            text.value = "c"  # cancels the run for "b"
            release.set()
            await tab.wait_for(lambda: "got c" in output_text(tab))
            await asyncio.sleep(0.2)
            assert "got b" not in output_text(tab)

    asyncio.run(main())


def test_async_generator_streams_and_stops_with_the_session(ks_server: Any) -> None:
    """Each value an async generator yields replaces the output; destroying the session closes the generator."""
    closed: list[str] = []
    step = ks.widgets.IntSlider(start=1, end=5, value=1)

    async def ticker(by: int) -> Any:
        n = 0
        try:
            while True:
                yield f"tick {n}"
                n += by
                await asyncio.sleep(0.02)
        finally:
            closed.append(ks.state.session_id)

    sessions: list[Any] = []

    def app() -> Any:
        sessions.append(current_session())
        return ks.Column(step, ks.bind(ticker, step))

    server = ks_server(app)

    async def main() -> str:
        async with ProtocolClient(server.url) as tab:
            await tab.wait_for(lambda: "tick 3" in output_text(tab))
            session = sessions[0]
            session.event_loop().call_soon_threadsafe(session.destroy)
            return tab.session_id

    sid = asyncio.run(main())
    deadline = asyncio.run(_wait(lambda: sid in closed))
    assert deadline, closed


async def _wait(predicate: Any, timeout: float = 10) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def test_depends_decorator_and_watch() -> None:
    """@ks.depends keeps the function callable with arguments; watch=True runs it on every change."""
    slider = ks.widgets.FloatSlider(value=1.0)
    seen: list[float] = []

    @ks.depends(slider, watch=True)
    def double(x: float) -> float:
        seen.append(x * 2)
        return x * 2

    assert double(4.0) == 8.0 and seen == [8.0]
    slider.value = 0.5
    assert seen == [8.0, 1.0]
    assert double.__ks_bound__() == 1.0
