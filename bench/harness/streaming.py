"""Scenario: a streaming table. Each session's DataTable holds 10,000 rows and
gets 100 new rows every 100 ms (``rollover`` keeps 10,000); see ``apps/*/stream.py``.

An *update* is one tick of a session's periodic callback: the app logs it as a
``T`` line in the tick log (the format of :func:`.scenarios.read_tick_log`).
Over a fixed window the scenario counts the updates the server made, the bytes
each session received, and the server's CPU, and reports them per update:

- bytes on the wire per update, per session: all bytes the sessions received in
  the window (every message, so whatever else a server sends rides along)
  divided by the updates the server made for them in that window;
- server CPU per update: the server process tree's CPU time in the window
  divided by those updates, so it includes the rest of its work (sending,
  timers, the app building the 100 new rows).

It is here rather than in :mod:`.scenarios` to keep each module small.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

from .protocol import BokehClient, Message
from .scenarios import Sizes, read_tick_log
from .servers import ServerProcess
from .stats import summarize

PERIOD_MS = 100.0
ROWS_PER_UPDATE = 100
TABLE_ROWS = 10_000


async def stream(srv: ServerProcess, sizes: Sizes, tick_log: str) -> dict[str, Any]:
    """``stream_sessions`` sessions, each streaming into its own 10,000-row table."""
    received: dict[int, list[tuple[float, int, bool]]] = {}
    doc_bytes: list[int] = []

    def recorder(client_id: int) -> Callable[[Message], None]:
        log = received.setdefault(client_id, [])

        def record(m: Message) -> None:
            if m.msgtype == "PULL-DOC-REPLY":
                doc_bytes.append(m.size)
            log.append((m.arrived, m.size, m.msgtype == "PATCH-DOC" and "ColumnsStreamed" in m.content))

        return record

    clients: list[BokehClient] = []
    errors: list[str] = []
    open_until = perf_counter() + sizes.phase_limit_s
    for i in range(sizes.stream_sessions):
        if perf_counter() > open_until:
            errors.append(f"opened only {len(clients)} sessions in {sizes.phase_limit_s} s")
            break
        client = BokehClient(srv.port, srv.path, on_message=recorder(i))
        try:
            await client.establish()
            clients.append(client)
        except Exception as exc:  # any failure is recorded in the results
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    await asyncio.sleep(1.0)
    cpu0, w0_wall, w0 = srv.cpu_s(), time.time(), perf_counter()
    await asyncio.sleep(sizes.stream_window_s)
    cpu1, w1_wall, w1 = srv.cpu_s(), time.time(), perf_counter()
    await asyncio.gather(*(c.close() for c in clients))
    ticks, _, _ = read_tick_log(tick_log)

    updates = sum(1 for ts in ticks.values() for t in ts if w0_wall <= t <= w1_wall)
    in_window = [(t, size, streamed) for log in received.values() for t, size, streamed in log if w0 <= t <= w1]
    wire_bytes = sum(size for _, size, _ in in_window)
    stream_sizes = [size for _, size, streamed in in_window if streamed]
    intervals: list[float] = []
    for log in received.values():
        times = [t for t, _, streamed in log if streamed and w0 <= t <= w1]
        intervals += [b - a for a, b in zip(times, times[1:])]
    asked = len(clients) * 1000 / PERIOD_MS
    achieved = updates / (w1_wall - w0_wall)
    return {
        "sessions": len(clients),
        "table_rows": TABLE_ROWS,
        "rows_per_update": ROWS_PER_UPDATE,
        "doc_bytes": max(doc_bytes) if doc_bytes else None,
        "doc_kb": round(max(doc_bytes) / 1024, 1) if doc_bytes else None,
        "asked_updates_per_s": round(asked, 1),
        "updates_per_s": round(achieved, 1),
        "updates_pct": round(100 * achieved / asked, 1) if asked else None,
        "updates": updates,
        "messages": len(in_window),
        "stream_messages": len(stream_sizes),
        "wire_bytes": wire_bytes,
        "bytes_per_update": round(wire_bytes / updates) if updates else None,
        "stream_message_bytes": summarize(stream_sizes, scale=1.0),
        "wire_kb_per_s_per_session": round(wire_bytes / 1024 / (w1 - w0) / max(len(clients), 1), 1),
        "server_cpu_ms_per_update": round((cpu1 - cpu0) * 1e3 / updates, 3) if updates else None,
        "server_cpu_cores": round((cpu1 - cpu0) / (w1 - w0), 2),
        "client_interval_ms": summarize(intervals),
        "errors": len(errors),
        "error_samples": errors[:3],
    }
