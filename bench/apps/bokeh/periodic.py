"""Bare-Bokeh twin of ``apps/ks/periodic.py`` (same tick log format)."""
import os
import time

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div


def make_log(path, sid):
    # names are bound now: Bokeh clears a session's module globals on destroy
    fh = open(path, "a", buffering=1) if path else None

    def log(kind, fh=fh, sid=sid, now=time.time_ns):
        if fh is not None:
            fh.write(f"{kind} {sid} {now()}\n")

    return log


doc = curdoc()
log = make_log(os.environ.get("BENCH_TICK_LOG"), getattr(doc.session_context, "id", None) or f"doc{id(doc)}")
pane = Div(text="<pre>tick=0;</pre>")
count = [0]


def tick(log=log, pane=pane, count=count):
    count[0] += 1
    pane.text = f"<pre>tick={count[0]};</pre>"
    log("T")


log("C")
doc.add_periodic_callback(tick, 100)
doc.on_session_destroyed(lambda ctx, log=log: log("D"))
doc.add_root(column(Div(text="<h1>Periodic</h1>"), pane))
doc.title = "bench-periodic"
