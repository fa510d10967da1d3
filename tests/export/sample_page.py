"""The page both save() test modules write: a Markdown heading, a slider, a text box and a plot with a blue line."""
from __future__ import annotations

from bokeh.plotting import figure

import kernelstate as ks


def sample_page() -> tuple[ks.widgets.IntSlider, ks.Column]:
    level = ks.widgets.IntSlider(name="level", start=0, end=10, value=7)
    words = ks.widgets.TextInput(name="words", value="tulips")
    chart = figure(height=250, width=400, title="prices", toolbar_location=None)
    chart.line([0, 1, 2, 3], [10.0, 10.5, 10.2, 11.0], line_width=4, color="#1f3fff")
    return level, ks.Column("## Saved offline", level, words, ks.pane.Bokeh(chart))
