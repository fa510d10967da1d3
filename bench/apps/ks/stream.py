"""A DataTable of 10,000 rows; every 100 ms the session streams 100 new rows into it
(``rollover=10_000``, so the oldest 100 go). Each session has its own table and its own data.

With ``BENCH_TICK_LOG`` set, the session's creation, every update and its
destruction are appended to that file as ``C|T|D <session id> <time_ns>``; the
harness counts the updates there. Twins: ``apps/panel/stream.py``, ``apps/bokeh/stream.py``.
"""
import os
import time

import numpy as np
import pandas as pd

import kernelstate as ks

ROWS, BATCH, PERIOD_MS = 10_000, 100, 100
LOG_PATH = os.environ.get("BENCH_TICK_LOG")
sid = ks.state.session_id
fh = open(LOG_PATH, "a", buffering=1) if LOG_PATH else None
rng = np.random.default_rng(0)
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta"])


def log(kind):
    if fh is not None:
        fh.write(f"{kind} {sid} {time.time_ns()}\n")


def rows(start, n):
    return pd.DataFrame({
        "id": np.arange(start, start + n, dtype=np.int64),
        "price": rng.random(n) * 100,
        "volume": rng.integers(0, 10_000, n),
        "category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)],
    }, index=pd.RangeIndex(start, start + n))


table = ks.widgets.DataTable(rows(0, ROWS), show_index=False)
next_id = [ROWS]


def update():
    table.stream(rows(next_id[0], BATCH), rollover=ROWS)
    next_id[0] += BATCH
    log("T")


def destroyed(*_):
    log("D")


log("C")
ks.state.add_periodic_callback(update, period=PERIOD_MS)
ks.state.on_session_destroyed(destroyed)
ks.Column(ks.pane.Markdown("# Streaming table"), table).servable(title="bench-stream")
