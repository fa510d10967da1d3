"""R2: session create/destroy cycles leak nothing.

Each cycle is what a browser tab does: GET the page, open the WebSocket, pull,
change a widget, close; the session then expires. Afterwards the Session, its
Document, the app's module globals, its periodic callback and its task must
be garbage (weakrefs dead), and RSS, threads, asyncio tasks and
``sys.modules`` must be back at their plateau.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import TextInput

import kernelstate as ks
from kernelstate.session import hooks, registry
from kernelstate.testing import ProtocolClient

from .conftest import collect, on_loop, rss_mb, run, wait_until

LEAK_APP = '''"""Leak probe"""
import asyncio
import kernelstate as ks


class Marker:
    """An object only this session's module globals hold."""


marker = Marker()
text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
text.param.watch(lambda e: setattr(echo, "object", "echo " + e.new), "value")
ticks = 0


def tick():
    global ticks
    ticks += 1


async def forever():
    while True:
        await asyncio.sleep(0.05)


periodic = ks.state.add_periodic_callback(tick, period=20)
ks.state.execute(forever)
ks.state.onload(lambda: None)
session = ks.state.session
session.probe = [marker, periodic, text, echo, tick]
task = next(iter(session.scheduler.tasks), None)
if task is not None:
    session.probe.append(task)
ks.Column(text, echo).servable()
'''


class Probe:
    """Weakrefs to everything a sampled session owned, collected through the hooks."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.created = 0
        self.destroyed = 0
        self.refs: list[tuple[str, weakref.ref[Any]]] = []
        self.lock = threading.Lock()

    def on_created(self, session: Any) -> None:
        with self.lock:
            self.created += 1
            if self.created % self.every == 0:
                self.refs.append(("Session", weakref.ref(session)))
                self.refs.append(("Document", weakref.ref(session.document)))

    def on_destroyed(self, session: Any) -> None:
        with self.lock:
            self.destroyed += 1
            if any(r() is session for _, r in self.refs):
                for obj in getattr(session, "probe", []):
                    self.refs.append((type(obj).__name__, weakref.ref(obj)))

    def alive(self) -> list[str]:
        return [name for name, ref in self.refs if ref() is not None]


async def one_cycle(url: str, i: int) -> None:
    async with ProtocolClient(url) as tab:
        await tab.set(tab.find(TextInput)[0], "value", f"v{i}")
        await tab.wait_for(lambda: f"echo v{i}" in tab.text())


def leak_run(ks_server: Any, tmp_path: Path, figures: Any, cycles: int) -> None:
    script = tmp_path / "leaky.py"
    script.write_text(LEAK_APP)
    probe = Probe(every=max(1, cycles // 20))
    hooks.add_created(probe.on_created)
    hooks.add_destroyed(probe.on_destroyed)
    try:
        server = ks_server(str(script), unused_session_lifetime_ms=1000, check_unused_sessions_ms=200)
        url = server.url + "leaky"
        batch = 10

        async def cycles_of(n: int, start: int) -> None:
            for i in range(start, start + n, batch):
                await asyncio.gather(*[one_cycle(url, j) for j in range(i, i + batch)])

        def settle() -> None:
            assert wait_until(lambda: len(server.manager) == 0, 10), "sessions did not expire"
            collect()

        # Warm-up: imports, caches and pools reach their steady state.
        run(lambda: cycles_of(50, 0))
        settle()
        modules0 = len(sys.modules)
        threads0 = threading.active_count()
        tasks0 = on_loop(server, lambda: len(asyncio.all_tasks()))
        rss: list[float] = [rss_mb()]
        step = max(batch, (cycles // 6) // batch * batch)
        done = 0
        t0 = time.monotonic()
        while done < cycles:
            n = min(step, cycles - done)
            run(lambda n=n, done=done: cycles_of(n, 50 + done))
            done += n
            settle()
            rss.append(rss_mb())
        elapsed = time.monotonic() - t0
        for _ in range(50):
            if not probe.alive():
                break
            gc.collect()
        alive = probe.alive()
        half = rss[len(rss) // 2:]
        growth_last_half = max(half) - half[0]
        tasks1 = on_loop(server, lambda: len(asyncio.all_tasks()))
        figures("cycles", cycles + 50)
        figures("seconds", f"{elapsed:.1f}")
        figures("RSS MB start/end (growth over last half)", f"{rss[0]:.1f}/{rss[-1]:.1f} ({growth_last_half:+.1f})")
        figures("weakrefs sampled / alive", f"{len(probe.refs)}/{len(alive)}")
        figures("threads / loop tasks / sys.modules delta",
                f"{threading.active_count() - threads0:+d}/{tasks1 - tasks0:+d}/{len(sys.modules) - modules0:+d}")
        assert probe.created == probe.destroyed == cycles + 50
        assert len(probe.refs) >= 20 * 2 and {n for n, _ in probe.refs} >= {"Session", "Document", "Marker", "PeriodicCallback", "Task"}
        assert not alive, f"still alive after 50 GC rounds: {alive}"
        assert growth_last_half <= 10.0, f"RSS grew {growth_last_half:.1f} MB over the last half: {rss}"
        assert registry.live(kind="served") == 0 and len(server.manager) == 0
        assert abs(threading.active_count() - threads0) <= 2
        assert tasks1 <= tasks0
        assert len(sys.modules) == modules0, "an app module or import leaked into sys.modules"
    finally:
        hooks.created.remove(probe.on_created)
        hooks.destroyed.remove(probe.on_destroyed)


def test_create_destroy_cycles_leak_nothing(ks_server: Any, tmp_path: Path, figures: Any) -> None:
    """300 full tab lifecycles: weakrefs dead, RSS flat over the last half, threads/tasks/modules at baseline."""
    leak_run(ks_server, tmp_path, figures, cycles=300)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_create_destroy_cycles_soak(ks_server: Any, tmp_path: Path, figures: Any) -> None:
    """Soak: 1,000 lifecycles."""
    leak_run(ks_server, tmp_path, figures, cycles=1000)


def test_app_that_raises_at_creation_is_not_retained(ks_server: Any, tmp_path: Path, logs: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that fails while building its session leaves no session, Document or module behind."""
    # pytest's own log capture keeps each record's traceback (and so the failed session's frames)
    # alive until the test ends; the ``logs`` recorder keeps the text only.
    monkeypatch.setattr(logging.getLogger("kernelstate"), "propagate", False)
    script = tmp_path / "broken.py"
    script.write_text('"""Broken"""\nimport kernelstate as ks\n\nclass Big:\n    pass\n\n'
                      'big = Big()\nks.state.session.probe = [big]\nraise RuntimeError("boom at creation")\n')
    refs: list[weakref.ref[Any]] = []

    def destroyed(session: Any) -> None:
        refs.append(weakref.ref(session))
        refs.extend(weakref.ref(o) for o in getattr(session, "probe", []))

    hooks.add_destroyed(destroyed)
    try:
        server = ks_server(str(script))

        async def main() -> None:
            from .conftest import fetch

            for _ in range(5):
                response = await fetch(server.url + "broken")
                assert response.code == 500

        run(main)
        collect(5)
        assert len(refs) == 10 and all(r() is None for r in refs), [r() for r in refs]
        assert len(server.manager) == 0 and registry.live(kind="served") == 0
        assert sum("failed to load" in m for m in logs.messages("kernelstate")) == 5
    finally:
        hooks.destroyed.remove(destroyed)
