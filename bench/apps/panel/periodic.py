"""Each session ticks every 100 ms, updating a Str pane with ``tick=<n>;``.

With ``BENCH_TICK_LOG`` set, the session's creation, every tick and its
destruction are appended to that file as ``C|T|D <session id> <time_ns>``.
"""
import os
import time

import panel as pn


def make_log(path, sid):
    # names are bound now: Panel clears a session's module globals on destroy
    fh = open(path, "a", buffering=1) if path else None

    def log(kind, fh=fh, sid=sid, now=time.time_ns):
        if fh is not None:
            fh.write(f"{kind} {sid} {now()}\n")

    return log


doc = pn.state.curdoc
sid = getattr(getattr(doc, "session_context", None), "id", None) or f"doc{id(doc)}"
log = make_log(os.environ.get("BENCH_TICK_LOG"), sid)
pane = pn.pane.Str("tick=0;")
count = [0]


def tick(log=log, pane=pane, count=count):
    count[0] += 1
    pane.object = f"tick={count[0]};"
    log("T")


log("C")
pn.state.add_periodic_callback(tick, period=100)
pn.state.on_session_destroyed(lambda ctx, log=log: log("D"))
pn.Column(pn.pane.Markdown("# Periodic"), pane).servable(title="bench-periodic")
