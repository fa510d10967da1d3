"""Each session ticks every 100 ms, updating a Str pane with ``tick=<n>;``.

With ``BENCH_TICK_LOG`` set, the session's creation, every tick and its
destruction are appended to that file as ``C|T|D <session id> <time_ns>``;
the harness reads it for the achieved period and for ticks after destroy.
"""
import os
import time

import kernelstate as ks

LOG_PATH = os.environ.get("BENCH_TICK_LOG")
sid = ks.state.session_id
fh = open(LOG_PATH, "a", buffering=1) if LOG_PATH else None


def log(kind):
    if fh is not None:
        fh.write(f"{kind} {sid} {time.time_ns()}\n")


pane = ks.pane.Str("tick=0;")
count = [0]


def tick():
    count[0] += 1
    pane.object = f"tick={count[0]};"
    log("T")


def destroyed(*_):
    # fh stays open: a tick after this line must still be logged to be counted
    log("D")


log("C")
ks.state.add_periodic_callback(tick, period=100)
ks.state.on_session_destroyed(destroyed)
ks.Column(ks.pane.Markdown("# Periodic"), pane).servable(title="bench-periodic")
