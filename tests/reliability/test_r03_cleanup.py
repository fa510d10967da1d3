"""R3: destroying a session stops everything it started, and runs its hooks once.

A session starts a 100 ms periodic callback, a long-running task, a stream of
``execute(schedule=True)`` calls and a threaded job that finishes after the
session is gone; it registers two destroyed hooks, the first of which raises.
After destroy: no tick and no queued call runs, the task is cancelled, the
threaded job's late write goes nowhere and raises nothing, and each hook ran
exactly once. The same holds however the session ends: the tab closes, the
server stops, or the tab vanishes without closing its socket.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import socket
import threading
import time
import weakref
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import pytest

import kernelstate as ks
from kernelstate.session import registry
from kernelstate.testing import ProtocolClient

from .conftest import LogRecorder, collect, run, wait_until


class Journal:
    """What every session did, with timestamps, written from the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.destroyed_at: dict[str, float] = {}
        self.tasks: dict[str, weakref.ref[Any]] = {}

    def add(self, sid: str, what: str) -> None:
        with self.lock:
            self.events[sid].append((what, time.monotonic()))

    def after_destroy(self, sid: str) -> list[str]:
        end = self.destroyed_at.get(sid)
        if end is None:
            return []
        return [w for w, t in self.events[sid] if t > end and not w.startswith("hook")]

    def count(self, sid: str, what: str) -> int:
        return sum(1 for w, _ in self.events[sid] if w == what)


def cleanup_app(journal: Journal) -> Any:
    def app() -> Any:
        sid = ks.state.session_id
        pane = ks.pane.Str("started")

        def tick() -> None:
            journal.add(sid, "tick")
            ks.state.execute(lambda: journal.add(sid, "queued"), schedule=True)

        async def forever() -> None:
            try:
                while True:
                    await asyncio.sleep(0.05)
                    journal.add(sid, "task")
            except asyncio.CancelledError:
                journal.add(sid, "task-cancelled")
                raise

        def late_thread_job() -> None:
            time.sleep(0.6)  # the session is destroyed meanwhile
            pane.object = "written after destroy"
            journal.add(sid, "thread-finished")

        def hook_raises(session: Any) -> None:
            journal.add(sid, "hook-raises")
            raise RuntimeError("a destroyed hook that raises")

        def hook_ok(session: Any) -> None:
            journal.add(sid, "hook-ok")
            with journal.lock:
                journal.destroyed_at[sid] = time.monotonic()

        ks.state.add_periodic_callback(tick, period=100)
        ks.state.execute(forever)
        journal.tasks[sid] = weakref.ref(next(iter(ks.state.session.scheduler.tasks)))
        ks.state.onload(lambda: ks.state.execute(late_thread_job, schedule="thread"))
        ks.state.on_session_destroyed(hook_raises)
        ks.state.on_session_destroyed(hook_ok)
        return pane

    return app


def check_clean(journal: Journal, sids: list[str], logs: LogRecorder) -> None:
    for sid in sids:
        assert journal.count(sid, "tick") > 0, "the periodic callback never ran"
        assert journal.count(sid, "hook-raises") == 1 and journal.count(sid, "hook-ok") == 1, journal.events[sid]
        late = [w for w in journal.after_destroy(sid) if w not in ("task-cancelled", "thread-finished")]
        assert late == [], f"ran after destroy: {late}"
        assert journal.count(sid, "task-cancelled") == 1
        task = journal.tasks[sid]()
        assert task is None or task.cancelled()
    failures = [r.getMessage() for r in logs.at_least(logging.ERROR, "kernelstate")
                if "a destroyed hook that raises" not in (r.exc_text or "") + r.getMessage()
                and "on_session_destroyed hook" not in r.getMessage()]
    assert failures == [], failures


def test_destroy_stops_everything_and_runs_hooks_once(ks_server: Any, logs: LogRecorder, figures: Any) -> None:
    """After expiry: 0 ticks/queued calls in 5 s, task cancelled, late thread write harmless, hooks once."""
    journal = Journal()
    server = ks_server(cleanup_app(journal), unused_session_lifetime_ms=200, check_unused_sessions_ms=50)

    async def main() -> list[str]:
        sids = []
        for _ in range(3):
            async with ProtocolClient(server.url) as tab:
                sids.append(tab.session_id)
                await asyncio.sleep(0.35)
        return sids

    sids = run(main)
    assert wait_until(lambda: all(s in journal.destroyed_at for s in sids), 5)
    destroyed = time.monotonic()
    time.sleep(5.0)
    for sid in sids:
        ends = [t for w, t in journal.events[sid] if w == "task-cancelled"]
        assert ends and ends[0] - journal.destroyed_at[sid] <= 1.0
    check_clean(journal, sids, logs)
    assert all(journal.count(s, "thread-finished") == 1 for s in sids), "the threaded job should finish quietly"
    figures("sessions; quiet window after destroy", f"{len(sids)}; {time.monotonic() - destroyed:.1f} s, 0 ticks")
    assert len(server.manager) == 0 and registry.live(kind="served") == 0


def test_server_stop_runs_each_hook_once(ks_server: Any, logs: LogRecorder) -> None:
    """Stopping the server with live tabs destroys each session once; nothing runs afterwards."""
    journal = Journal()
    server = ks_server(cleanup_app(journal))
    tabs: list[ProtocolClient] = []

    async def open_tabs() -> list[str]:
        for _ in range(3):
            tab = ProtocolClient(server.url)
            await tab.fetch_page()
            await tab.connect()
            tabs.append(tab)
        await asyncio.sleep(0.3)
        server.stop()
        codes = [await tab.wait_closed(5) for tab in tabs]
        assert all(code == 4503 and "reload" in (reason or "") for code, reason in codes), codes
        return [tab.session_id for tab in tabs]

    sids = run(open_tabs)
    server.stop()  # idempotent
    time.sleep(1.0)
    check_clean(journal, sids, logs)


def raw_upgrade(http_url: str, token: str) -> socket.socket:
    """Open a WebSocket by hand and then never read, write or answer pings: a vanished tab."""
    parts = urlsplit(http_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    path = parts.path.rstrip("/") + "/ws"
    request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: bokeh, {token}\r\n\r\n")
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def test_silent_client_is_reaped_via_ping_timeout(ks_server: Any, logs: LogRecorder, figures: Any) -> None:
    """A tab that vanishes without closing its socket is dropped by ping timeout; then its session expires."""
    journal = Journal()
    keep_alive_ms, lifetime_ms, check_ms = 200, 300, 100
    server = ks_server(cleanup_app(journal), keep_alive_ms=keep_alive_ms,
                       unused_session_lifetime_ms=lifetime_ms, check_unused_sessions_ms=check_ms)

    async def page() -> str:
        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        return tab.token

    token = run(page)
    from kernelstate.testing import session_id_from_token

    sid = session_id_from_token(token)
    sock = raw_upgrade(server.url, token)
    try:
        t0 = time.monotonic()
        assert wait_until(lambda: (e := server.manager.get(sid)) is not None and e.connections == 1, 5)
        assert wait_until(lambda: server.manager.get(sid) is not None and server.manager.get(sid).connections == 0, 10)
        closed_after = time.monotonic() - t0
        assert wait_until(lambda: sid in journal.destroyed_at, 10)
        reaped_after = journal.destroyed_at[sid] - t0
    finally:
        sock.close()
    figures("silent client: closed / reaped after s", f"{closed_after:.2f} / {reaped_after:.2f}")
    # Tornado sends the close frame at ping interval + timeout, then waits up to 5 s for the
    # peer's close frame before dropping the TCP connection (and calling on_close).
    limit_close = 2 * keep_alive_ms / 1000 + 5.0 + 0.5
    assert closed_after <= limit_close, f"connection dropped after {closed_after:.2f}s"
    assert reaped_after - closed_after <= (lifetime_ms + check_ms) / 1000 + 0.3
    time.sleep(1.0)
    check_clean(journal, [sid], logs)


def test_process_tasks_scheduled_from_a_session_do_not_keep_it(ks_server: Any, figures: Any) -> None:
    """A schedule_task (period/cron) started by app code outlives the session without holding it or running as it."""
    seen: list[str] = []
    refs: list[weakref.ref[Any]] = []
    name = f"r3-task-{os.getpid()}-{time.monotonic_ns()}"
    cron_name = name + "-cron"

    def app() -> Any:
        refs.append(weakref.ref(ks.state.session))
        ks.state.schedule_task(name, lambda: seen.append(ks.state.session_id), period=dt.timedelta(seconds=0.1))
        ks.state.schedule_task(cron_name, lambda: None, cron="* * * * *")
        return ks.pane.Str("tasks")

    server = ks_server(app, unused_session_lifetime_ms=100, check_unused_sessions_ms=50)
    try:
        async def main() -> str:
            async with ProtocolClient(server.url) as tab:
                return tab.session_id

        sid = run(main)
        assert wait_until(lambda: len(server.manager) == 0, 5)
        mark = len(seen)
        time.sleep(0.5)
        collect(5)
        late = seen[mark:]
        figures("process task runs after the session ended", len(late))
        assert late, "the process-wide task keeps running after the session that scheduled it"
        assert sid not in late, "a process-wide task ran with a destroyed session current"
        assert refs[0]() is None, "a process-wide task keeps the destroyed session alive"
    finally:
        ks.state.cancel_task(name)
        ks.state.cancel_task(cron_name)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_destroy_cleanup_soak(ks_server: Any, logs: LogRecorder) -> None:
    """Soak: 100 sessions expiring together; then 10 s without a single tick."""
    journal = Journal()
    server = ks_server(cleanup_app(journal), unused_session_lifetime_ms=500, check_unused_sessions_ms=100)

    async def main() -> list[str]:
        tabs = [ProtocolClient(server.url) for _ in range(100)]
        for i in range(0, 100, 10):
            await asyncio.gather(*[t.fetch_page() for t in tabs[i:i + 10]])
            await asyncio.gather(*[t.connect() for t in tabs[i:i + 10]])
        await asyncio.sleep(0.5)
        await asyncio.gather(*[t.close() for t in tabs])
        return [t.session_id for t in tabs]

    sids = run(main)
    assert wait_until(lambda: all(s in journal.destroyed_at for s in sids), 10)
    time.sleep(10.0)
    check_clean(journal, sids, logs)
