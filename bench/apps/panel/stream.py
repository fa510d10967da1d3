"""Panel twin of ``apps/ks/stream.py``: a Tabulator of 10,000 rows, 100 rows streamed
every 100 ms with ``rollover=10_000``, no pagination (every row is in the browser, as
in kernelstate's DataTable) and no scrolling to the new rows (``follow=False``)."""
import os
import time

import numpy as np
import pandas as pd
import panel as pn

ROWS, BATCH, PERIOD_MS = 10_000, 100, 100
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta"])


def make_log(path, sid):
    # names are bound now: Panel clears a session's module globals on destroy
    fh = open(path, "a", buffering=1) if path else None

    def log(kind, fh=fh, sid=sid, now=time.time_ns):
        if fh is not None:
            fh.write(f"{kind} {sid} {now()}\n")

    return log


def make_rows(rng):
    def rows(start, n, rng=rng):
        return pd.DataFrame({
            "id": np.arange(start, start + n, dtype=np.int64),
            "price": rng.random(n) * 100,
            "volume": rng.integers(0, 10_000, n),
            "category": CATEGORIES[rng.integers(0, len(CATEGORIES), n)],
        }, index=pd.RangeIndex(start, start + n))

    return rows


doc = pn.state.curdoc
sid = getattr(getattr(doc, "session_context", None), "id", None) or f"doc{id(doc)}"
log = make_log(os.environ.get("BENCH_TICK_LOG"), sid)
rows = make_rows(np.random.default_rng(0))
table = pn.widgets.Tabulator(rows(0, ROWS), show_index=False, pagination=None, disabled=True)
next_id = [ROWS]


def update(table=table, rows=rows, next_id=next_id, log=log):
    table.stream(rows(next_id[0], BATCH), rollover=ROWS, follow=False)
    next_id[0] += BATCH
    log("T")


log("C")
pn.state.add_periodic_callback(update, period=PERIOD_MS)
pn.state.on_session_destroyed(lambda ctx, log=log: log("D"))
pn.Column(pn.pane.Markdown("# Streaming table"), table).servable(title="bench-stream")
