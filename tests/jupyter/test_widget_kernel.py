"""The widget transport in a real ipykernel, with a widget frontend written in Python (no server, no browser).

One kernel for the module. The frontend (:mod:`kernelstate.testing.widgets`)
speaks to the ``DocumentWidget`` as ``static/widget.js`` does: BokehJS on
request, then Bokeh protocol frames per view as custom comm messages.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Slider
from bokeh.util.paths import bokehjs_path

from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.widgets import WIDGET_VIEW, WidgetFrontend, model_id

pytest.importorskip("anywidget", reason="the widget transport needs anywidget (pip install kernelstate[widgets])")

CELL = """import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=100, value=3)
shown = ks.pane.Markdown("n is 3")
slider.param.watch(lambda event: setattr(shown, "object", f"n is {event.new}"), "value")
ks.Column(slider, shown)"""

# [hosted Documents, ipywidgets instances (each output's widget and its Layout), live cell sessions]
COUNT_LIVE = ("[len(__import__('kernelstate.jupyter.comm', fromlist=['x']).kernel_documents()),"
              " len(__import__('ipywidgets.widgets.widget', fromlist=['x'])._instances),"
              " __import__('kernelstate.session', fromlist=['x']).registry.live('cell')]")


class Kernel:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        from jupyter_client.manager import AsyncKernelManager

        self.km = AsyncKernelManager(kernel_name="python3")
        self.loop.run_until_complete(self.km.start_kernel())
        self.client = self.km.client()
        self.client.start_channels()
        self.loop.run_until_complete(self.client.wait_for_ready(timeout=60))
        self.frontend = WidgetFrontend(self.client)
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.frontend.start()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 120))

    async def value(self, expr: str) -> Any:
        # user_expressions: a shell reply, read through the same client
        msg_id = self.client.execute("", silent=True, store_history=False,
                                     user_expressions={"v": f"__import__('json').dumps({expr})"})
        while True:
            reply = await self.client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result = reply["content"]["user_expressions"]["v"]
        assert result.get("status") == "ok", result
        return json.loads(eval(result["data"]["text/plain"]))  # a Python str repr of the JSON text

    def close(self) -> None:
        self.run(self.frontend.stop())
        self.client.stop_channels()
        self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        self.loop.close()


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def slider_of(tab: Any) -> Slider:
    (slider,) = tab.find(Slider)
    return slider


def test_widget_view_is_live_and_two_views_stay_in_sync(kernel: Kernel) -> None:
    """Display -> widget; BokehJS on request; a view's slider change updates the pane; a second cell stays in sync."""

    async def scenario() -> None:
        fe = kernel.frontend
        outputs = await fe.run(CELL)
        data = outputs[0]["content"]["data"]
        assert WIDGET_VIEW in data and "<script>" in data["text/html"]     # comms="auto": widget and relay both offered
        model = fe.models[model_id(outputs)]
        assert model.state["bokeh_version"] and "n is 3" in model.state["snapshot"]
        # BokehJS, in parts, from the kernel: the four bundles the relay's runtime loads.
        fe.send(model.comm_id, {"ks": "bokehjs"})
        (first, first_buffers), = await fe.reply(model, "bokehjs")
        parts = await fe.reply(model, "bokehjs", first["parts"] - 1)
        sizes = [len(first_buffers[0])] + [len(b[0]) for _, b in parts]
        js = Path(bokehjs_path()) / "js"
        expected = sum((js / f"{n}.min.js").stat().st_size for n in ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"))
        assert abs(sum(sizes) - expected) < 100 and max(sizes) <= 256 * 1024
        assert await kernel.value(COUNT_LIVE) == [1, 2, 1]   # the output's one Document, not yet connected

        tab = await fe.view(model.comm_id)
        await tab.set(slider_of(tab), "value", 42)
        await tab.wait_for(lambda: "n is 42" in tab.text())
        # The same slider shown by a second cell: both views stay in sync, both ways.
        second = model_id(await fe.run("ks.Row(slider)"))
        tab2 = await fe.view(second)
        assert slider_of(tab2).value == 42
        await tab2.set(slider_of(tab2), "value", 7)
        await tab.wait_for(lambda: slider_of(tab).value == 7 and "n is 7" in tab.text())
        assert await kernel.value(COUNT_LIVE) == [2, 4, 2]
        # The first view leaves the page: its Document and its widget go; the second stays live.
        await tab.close()
        await _until(lambda: model.closed)
        assert await kernel.value(COUNT_LIVE) == [1, 2, 1]
        await tab2.set(slider_of(tab2), "value", 8)
        await tab2.close()
        await _until(lambda: fe.models[second].closed)
        assert await kernel.value(COUNT_LIVE) == [0, 0, 0]

    kernel.run(scenario())


def test_a_cell_and_a_served_session_stay_in_sync(kernel: Kernel) -> None:
    """The same slider in a widget view and in a session served from the kernel (%serve): changes go both ways."""

    async def scenario() -> None:
        fe = kernel.frontend
        outputs = await fe.run(CELL)
        await fe.run("from kernelstate.jupyter import kernel_server\n_served = kernel_server.start(slider, label='slider')")
        url = await kernel.value("_served.server.app_urls()[0][1]")
        tab = await fe.view(model_id(outputs))
        async with ProtocolClient(url, timeout=60) as served:
            await tab.set(slider_of(tab), "value", 21)
            await served.wait_for(lambda: slider_of(served).value == 21)
            await served.set(slider_of(served), "value", 34)
            await tab.wait_for(lambda: slider_of(tab).value == 34 and "n is 34" in tab.text())
        await tab.close()
        await fe.run("kernel_server.stop()")
        await _until(lambda: fe.models[model_id(outputs)].closed)
        assert await kernel.value(COUNT_LIVE) == [0, 0, 0]

    kernel.run(scenario())


def test_transport_choice(kernel: Kernel) -> None:
    """ks.extension(comms=...): 'relay' offers no widget; 'anywidget' no relay script; bad values are refused."""

    async def scenario() -> None:
        fe = kernel.frontend
        relay = await fe.run("ks.extension(comms='relay')\nks.pane.Markdown('r')")
        assert WIDGET_VIEW not in relay[0]["content"]["data"] and "<script>" in relay[0]["content"]["data"]["text/html"]
        widget = await fe.run("ks.extension(comms='anywidget')\nks.pane.Markdown('w')")
        data = widget[0]["content"]["data"]
        assert WIDGET_VIEW in data and "<script>" not in data["text/html"] and ">w<" in data["text/html"]
        with pytest.raises(AssertionError, match="comms must be one of 'auto', 'relay', 'anywidget'; got 'ws'"):
            await fe.run("ks.extension(comms='ws')")
        await fe.run("ks.extension(comms='auto')\n"
                     "from kernelstate.jupyter.comm import kernel_documents\n"
                     "[kernel_documents().destroy(h.doc_id) for h in kernel_documents().documents()]")
        assert await kernel.value(COUNT_LIVE) == [0, 0, 0]

    kernel.run(scenario())


def test_re_running_the_cell_closes_its_views(kernel: Kernel) -> None:
    """Re-running a cell destroys its output's Document: the view is told why and the widget closes."""

    async def scenario() -> None:
        fe = kernel.frontend
        outputs = await fe.run(CELL, cell_id="cell-a")
        tab = await fe.view(model_id(outputs))
        await fe.run("pass", cell_id="cell-a")
        code, reason = await tab.wait_closed(30)
        assert code == 4404 and "re-run" in str(reason)
        await _until(lambda: fe.models[model_id(outputs)].closed)
        assert await kernel.value(COUNT_LIVE) == [0, 0, 0]

    kernel.run(scenario())


def test_100_display_clear_cycles_leave_no_session(kernel: Kernel) -> None:
    """Display, connect a view, clear the output (the view leaves), 100 times: 0 sessions, 0 widgets left."""

    async def scenario() -> None:
        fe = kernel.frontend
        for i in range(100):
            outputs = await fe.run(f"ks.Column(ks.widgets.IntSlider(name='s{i}'), ks.pane.Markdown('m{i}'))")
            tab = await fe.view(model_id(outputs))
            assert f"m{i}" in tab.text()
            await tab.close()
        await _until(lambda: all(m.closed for m in fe.models.values()))
        assert await kernel.value(COUNT_LIVE) == [0, 0, 0]

    kernel.run(scenario())


async def _until(predicate: Any, timeout: float = 30, what: Any = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out {what() if what else ''}"
        await asyncio.sleep(0.02)
