"""``basic.py`` whose construction takes ~50 ms per session (a stand-in for
loading data), to show what session reuse and warming save."""
import time

import kernelstate as ks

time.sleep(0.05)

title = ks.pane.Markdown("# Benchmark app")
slider = ks.widgets.IntSlider(name="N", start=0, end=100000, value=0)
button = ks.widgets.Button(name="Click me")
out = ks.pane.Str("value=0;clicks=0;")
clicks = [0]


def render(*_):
    out.object = f"value={slider.value};clicks={clicks[0]};"


def on_click(event):
    clicks[0] += 1
    render()


slider.param.watch(render, "value")
button.on_click(on_click)
ks.Column(title, slider, button, out).servable(title="bench-slow")
