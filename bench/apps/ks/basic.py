"""The benchmark app: a title, an IntSlider, a Button and a Str pane reading
``value=<slider>;clicks=<n>;`` that both widgets update. The harness drives
the slider and the button and waits for that text in the server's patch.
Twins: ``apps/panel/basic.py`` and ``apps/bokeh/basic.py``."""
import kernelstate as ks

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
ks.Column(title, slider, button, out).servable(title="bench-basic")
