"""Panel twin of ``apps/ks/basic.py``: a title, an IntSlider, a Button and a Str
pane reading ``value=<slider>;clicks=<n>;`` that both widgets update."""
import panel as pn

title = pn.pane.Markdown("# Benchmark app")
slider = pn.widgets.IntSlider(name="N", start=0, end=100000, value=0)
button = pn.widgets.Button(name="Click me")
out = pn.pane.Str("value=0;clicks=0;")
clicks = [0]


def render(*_):
    out.object = f"value={slider.value};clicks={clicks[0]};"


def on_click(event):
    clicks[0] += 1
    render()


slider.param.watch(render, "value")
button.on_click(on_click)
pn.Column(title, slider, button, out).servable(title="bench-basic")
