"""The behaviour spec's app, the same file in every host.

Served (standalone or by the Jupyter extension) it runs once per session; in a
notebook cell the last line displays it. The app's code runs in the served
session, but a cell's code runs in the kernel, before its document exists; so
everything per-session is done in the "start" button's callback, which every
host runs with the session current. What the test cannot read from the
document (after the session is gone) is written to files in
``$KS_HOSTS_MARKS``, named by session id.
"""
import json
import os
from pathlib import Path

import kernelstate as ks

MARKS = Path(os.environ["KS_HOSTS_MARKS"])


def build():
    counter = ks.widgets.IntSlider(name="counter", start=0, end=100, value=0)
    echo = ks.pane.Str("echo 0")
    who = ks.pane.Str("session ?")
    loaded = ks.pane.Str("onload pending")
    args = ks.pane.Str("args " + json.dumps({k: [v.decode() for v in vs] for k, vs in ks.state.session_args.items()}))
    start = ks.widgets.Button(name="start")
    counter.param.watch(lambda event: setattr(echo, "object", f"echo {event.new}"), "value")

    def on_start(event):
        sid = ks.state.session_id
        ticks = [0]
        # The callbacks close over all they use: a destroyed session's app namespace is
        # cleared, so a tick reading globals would fail rather than show it still runs.
        ticks_path, partial, destroyed_path = (MARKS / f"{sid}.{kind}" for kind in ("ticks", "ticks.partial", "destroyed"))
        replace, state = os.replace, ks.state

        def tick():
            ticks[0] += 1
            partial.write_text(str(ticks[0]))
            replace(partial, ticks_path)   # the test never reads a half-written count

        def destroyed(session):
            with destroyed_path.open("a") as f:
                f.write(f"{session.id} {state.session_id}\n")

        ks.state.add_periodic_callback(tick, period=100)
        ks.state.on_session_destroyed(destroyed)
        ks.state.onload(lambda: setattr(loaded, "object", f"onload {state.session_id}"))
        who.object = f"session {sid}"

    start.on_click(on_start)
    return ks.Column(counter, echo, who, loaded, args, start)


build().servable()
