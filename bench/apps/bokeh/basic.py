"""Bare-Bokeh twin of ``apps/ks/basic.py`` for ``bokeh serve``: a Div title,
a Slider, a Button and a Div reading ``value=<slider>;clicks=<n>;``."""
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Slider

title = Div(text="<h1>Benchmark app</h1>")
slider = Slider(title="N", start=0, end=100000, step=1, value=0)
button = Button(label="Click me")
out = Div(text="<pre>value=0;clicks=0;</pre>")
clicks = [0]


def render():
    out.text = f"<pre>value={slider.value};clicks={clicks[0]};</pre>"


def on_click(event):
    clicks[0] += 1
    render()


slider.on_change("value", lambda attr, old, new: render())
button.on_click(on_click)
curdoc().add_root(column(title, slider, button, out))
curdoc().title = "bench-basic"
