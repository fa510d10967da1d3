"""Bare-Bokeh twin of ``apps/ks/stream.py``: a DataTable over a ColumnDataSource of
10,000 rows, ``source.stream(100 rows, rollover=10_000)`` every 100 ms."""
import os
import time

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn

ROWS, BATCH, PERIOD_MS = 10_000, 100, 100
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta"])


def make_log(path, sid):
    # names are bound now: Bokeh clears a session's module globals on destroy
    fh = open(path, "a", buffering=1) if path else None

    def log(kind, fh=fh, sid=sid, now=time.time_ns):
        if fh is not None:
            fh.write(f"{kind} {sid} {now()}\n")

    return log


def make_rows(rng):
    def rows(start, n, rng=rng):
        return {
            "id": np.arange(start, start + n, dtype=np.int64),
            "price": rng.random(n) * 100,
            "volume": rng.integers(0, 10_000, n),
            "category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)],
        }

    return rows


doc = curdoc()
log = make_log(os.environ.get("BENCH_TICK_LOG"), getattr(doc.session_context, "id", None) or f"doc{id(doc)}")
rows = make_rows(np.random.default_rng(0))
source = ColumnDataSource(rows(0, ROWS))
table = DataTable(source=source, columns=[TableColumn(field=c, title=c) for c in source.data], index_position=None)
next_id = [ROWS]


def update(source=source, rows=rows, next_id=next_id, log=log):
    source.stream(rows(next_id[0], BATCH), rollover=ROWS)
    next_id[0] += BATCH
    log("T")


log("C")
doc.add_periodic_callback(update, PERIOD_MS)
doc.on_session_destroyed(lambda ctx, log=log: log("D"))
doc.add_root(column(Div(text="<h1>Streaming table</h1>"), table))
doc.title = "bench-stream"
