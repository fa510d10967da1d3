"""Components displayed in a real kernel are live over the extension's relay."""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, Slider

from jupyter_helpers import doc_output

SLIDER_CELL = """
import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
shown = ks.pane.Markdown("n is 3")
calls = []
def changed(event):
    calls.append(event.new)
    shown.object = f"n is {event.new}"
slider.param.watch(changed, "value")
ks.Column(slider, shown)
"""


async def test_slider_patch_runs_kernel_callback_and_patches_back(user_kernel: Any, relay_client: Any, ks_ext: Any) -> None:
    """Moving the slider (PATCH-DOC over the relay) runs the kernel callback; the pane's change comes back."""
    out = doc_output(await user_kernel.run(SLIDER_CELL))
    assert out["kernel_id"] == user_kernel.kernel_id
    async with relay_client(out) as tab:
        slider = tab.find(Slider)[0]
        assert slider.value == 3 and "n is 3" in tab.text()
        await tab.set(slider, "value", 7)
        await tab.wait_for(lambda: "n is 7" in tab.text())
        assert await user_kernel.value("calls") == [7]
        # A kernel-side change (a later cell) reaches the browser too.
        await user_kernel.run("slider.value = 9")
        await tab.wait_for(lambda: tab.find(Slider)[0].value == 9 and "n is 9" in tab.text())


async def test_periodic_callback_patches_are_coalesced_under_the_iopub_limits(user_kernel: Any, relay_client: Any,
                                                                              ks_ext: Any) -> None:
    """A fast periodic callback updates the live output; its traffic is batched to at most one comm message per 20 ms."""
    out = doc_output(await user_kernel.run("""
import kernelstate as ks
ticker = ks.pane.Str("tick 0")
count = [0]
def tick():
    count[0] += 1
    ticker.object = f"tick {count[0]}"
cb = ks.state.add_periodic_callback(tick, period=5)
ticker
"""))
    async with relay_client(out) as tab:
        await tab.wait_for(lambda: any(f"tick {n}" in tab.text() for n in range(5, 100000)), timeout=10)
        # Every frontend of the kernel sees the relay's comm messages on iopub: count them for 2 s.
        comm_msgs, deadline = 0, asyncio.get_running_loop().time() + 2.0
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await user_kernel.client.get_iopub_msg(timeout=left)
            except Exception:
                break
            comm_msgs += msg["msg_type"] == "comm_msg"
        ticks = await user_kernel.value("count[0]")
        # ~50 messages/s at most (the limit Jupyter enforces per frontend is 1000/s), whatever the tick rate.
        assert ticks > 150 and 10 < comm_msgs <= 125, (ticks, comm_msgs)
        assert tab.patches_received >= 10
    await user_kernel.run("cb.stop()")


async def test_binary_buffers_cross_the_relay_both_ways(user_kernel: Any, relay_client: Any, ks_ext: Any) -> None:
    """NumPy arrays travel as binary frames (comm buffers): pulled, patched by the kernel, patched by the browser."""
    out = doc_output(await user_kernel.run("""
import numpy as np
import kernelstate as ks
from bokeh.models import ColumnDataSource, Column as BkColumn, Div
source = ColumnDataSource(data={"x": np.arange(1000, dtype="float64")})
label = Div(text="", tags=[source])
ks.pane.BokehModel(BkColumn(children=[label], tags=[source]))
"""))
    async with relay_client(out) as tab:
        source = tab.find(ColumnDataSource)[0]
        assert len(source.data["x"]) == 1000 and float(source.data["x"][999]) == 999.0
        await user_kernel.run("source.data = {'x': np.arange(5, dtype='float64') * 2}")
        await tab.wait_for(lambda: list(tab.find(ColumnDataSource)[0].data["x"]) == [0, 2, 4, 6, 8])
        await tab.set(source, "data", {"x": np.full(500, 7.0)})
        assert await user_kernel.value("[len(source.data['x']), float(source.data['x'][0])]") == [500, 7.0]


async def test_bound_function_and_one_figure_in_two_cells(user_kernel: Any, relay_client: Any, ks_ext: Any) -> None:
    """A ks.bind output in a cell re-runs when the browser moves its slider; one figure in two cells gets the stream."""
    first = doc_output(await user_kernel.run("""
import kernelstate as ks
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
n = ks.widgets.IntSlider(name="n", start=0, end=10, value=2)
source = ColumnDataSource({"x": [0], "y": [0]})
fig = figure()
fig.line("x", "y", source=source)
plot = ks.pane.Bokeh(fig)
ks.Column(n, ks.bind(lambda v: f"square is {v * v}", n), plot)
"""))
    second = doc_output(await user_kernel.run("plot"))
    async with relay_client(first) as a, relay_client(second) as b:
        assert "square is 4" in a.text()
        await a.set(a.find(Slider)[0], "value", 7)
        await a.wait_for(lambda: "square is 49" in a.text())
        await user_kernel.run('source.stream({"x": [1], "y": [5]})')
        for tab in (a, b):
            await tab.wait_for(lambda tab=tab: [list(s.data["y"]) for s in tab.find(ColumnDataSource)] == [[0, 5]])
