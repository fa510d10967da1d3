"""R1: sessions stay isolated under sustained concurrent load.

Every session writes its own nonce through a widget (browser -> server ->
watcher -> pane) and through a periodic callback (server -> browser), and
logs it with ``ks.state.log``. No session may ever see another's nonce: not
in its Document, not in ``ks.state`` inside its callbacks, not in a log line
that carries its session id.
"""
from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from bokeh.models import TextInput

import kernelstate as ks
from kernelstate.testing import ProtocolClient

from .conftest import percentile, run

NONCE = re.compile(r"N\d{4}x[0-9a-f]{6}")


ISOLATION_APP = '''"""Isolation probe"""
import logging
import kernelstate as ks

own = ks.state.session_args["nonce"][0].decode()
sid = ks.state.session_id
probe = logging.getLogger("isolation.probe")


def check(where):
    # ks.state inside every callback must still be this session's.
    seen = ks.state.session_args["nonce"][0].decode()
    if seen != own or ks.state.session_id != sid:
        probe.error("VIOLATION in %s: session %s expected %s, ks.state says %s/%s",
                    where, sid, own, seen, ks.state.session_id)


text = ks.widgets.TextInput(name="nonce", value="")
echo = ks.pane.Str("")
tick = ks.pane.Str("")
ticks = 0


def on_text(event):
    check("watcher")
    echo.object = f"echo {ks.state.session_args['nonce'][0].decode()} {event.new}"


def periodic():
    global ticks
    check("periodic")
    ticks += 1
    tick.object = f"tick {own} {ticks} {text.value}"
    ks.state.log(f"nonce={ks.state.session_args['nonce'][0].decode()}")


check("app")
text.param.watch(on_text, "value")
ks.state.add_periodic_callback(periodic, period=200)
ks.Column(text, echo, tick).servable()
'''


def nonce_for(i: int) -> str:
    import secrets

    return f"N{i:04d}x{secrets.token_hex(3)}"


async def drive(tab: ProtocolClient, nonce: str, duration_s: float, interval_s: float, rtts: list[float],
                problems: list[str], start_at: float) -> int:
    """One connected tab: set its nonce every ``interval_s``; check the replica holds no foreign nonce."""
    rounds = 0
    box = tab.find(TextInput)[0]
    # Spread the tabs' writes over the interval so the load is steady, not bursty.
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        value = f"{nonce}-{rounds}"
        t0 = time.perf_counter()
        await tab.set(box, "value", value)
        rtts.append(time.perf_counter() - t0)
        await tab.wait_for(lambda: f"echo {nonce} {value}" in tab.text(), timeout=30)
        foreign = set(NONCE.findall(tab.text())) - {nonce}
        if foreign:
            problems.append(f"{nonce} saw {sorted(foreign)}")
        rounds += 1
        await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - t0)))
    await tab.wait_for(lambda: f"tick {nonce} " in tab.text(), timeout=30)
    if tab.errors:
        problems.append(f"{nonce} got ERROR replies: {tab.errors[:3]}")
    if tab.close_code is not None:
        problems.append(f"{nonce} was closed: {tab.close_code} {tab.close_reason}")
    return rounds


async def open_tab(url: str, nonce: str, owners: dict[str, str]) -> ProtocolClient:
    tab = ProtocolClient(f"{url}?nonce={nonce}", timeout=30)
    await tab.fetch_page()
    await tab.connect()
    assert tab.ws is not None
    tab.ws.stream.set_nodelay(True)  # as browsers do; Nagle would add 40 ms to multi-frame messages
    owners[tab.session_id] = nonce
    return tab


def check_log(text: str, sessions: dict[str, str]) -> tuple[int, list[str]]:
    """Every ``session <id>: nonce=<n>`` line must pair a session with its own nonce."""
    bad: list[str] = []
    lines = 0
    for m in re.finditer(r"session (\S+): nonce=(\S+)", text):
        lines += 1
        if sessions.get(m.group(1)) != m.group(2):
            bad.append(m.group(0)[:200])
    return lines, bad


def isolation_run(ks_serve_process: Any, tmp_path: Path, figures: Any, sessions: int, duration_s: float) -> None:
    script = tmp_path / "iso.py"
    script.write_text(ISOLATION_APP)
    # All tabs come from 127.0.0.1: beyond the default per-address shares (100 sessions, 128
    # connections) the soak lifts them.
    lift = ("--max-sessions-per-client", "0", "--max-connections-per-client", "0") if sessions > 100 else ()
    proc = ks_serve_process(str(script), "--unused-session-lifetime", "60000", *lift)
    url = proc.url.rstrip("/") + "/iso"
    server = psutil.Process(proc.proc.pid)
    owners: dict[str, str] = {}

    async def paced(count: int, seconds: float) -> tuple[list[float], list[str], list[int]]:
        rtts: list[float] = []
        problems: list[str] = []
        nonces = [nonce_for(i) for i in range(count)]
        # Open every tab first (in batches, as a crowd arriving), then measure the steady state.
        tabs: list[ProtocolClient] = []
        for i in range(0, count, 10):
            tabs += await asyncio.gather(*[open_tab(url, n, owners) for n in nonces[i:i + 10]])
        t0 = time.monotonic() + 1.0
        results = await asyncio.gather(*[
            drive(tab, nonce, seconds, 1.0, rtts, problems, t0 + i / count)
            for i, (tab, nonce) in enumerate(zip(tabs, nonces))
        ], return_exceptions=True)
        await asyncio.gather(*[tab.close() for tab in tabs])
        rounds = []
        for r in results:
            if isinstance(r, BaseException):
                problems.append(f"tab failed: {type(r).__name__}: {r}")
            else:
                rounds.append(r)
        return rtts, problems, rounds

    # The baseline: one tab alone, paced exactly like each tab of the loaded run.
    base, base_problems, _ = run(lambda: paced(1, 8))
    assert not base_problems, base_problems
    cpu0 = server.cpu_times()
    rtts, problems, rounds = run(lambda: paced(sessions, duration_s), timeout=duration_s + 180)
    cpu1 = server.cpu_times()
    time.sleep(0.5)  # let the log pump catch up
    output = proc.log_text()
    log_lines, bad_lines = check_log(output, owners)
    violations = [line for line in output.splitlines() if "VIOLATION" in line]
    errors = [line for line in output.splitlines()
              if re.search(r" (WARNING|ERROR|CRITICAL) ", line) or "Traceback" in line]
    p50, p99, base_p50, base_p99 = (percentile(rtts, 50), percentile(rtts, 99),
                                    percentile(base, 50), percentile(base, 99))
    figures("sessions x seconds", f"{sessions} x {duration_s:g}")
    figures("round trips (ticks logged)", f"{len(rtts)} ({log_lines})")
    figures("foreign values", len(problems) + len(violations) + len(bad_lines))
    figures("round trip p50/p99 ms (1-tab baseline)",
            f"{p50 * 1000:.1f}/{p99 * 1000:.1f} ({base_p50 * 1000:.1f}/{base_p99 * 1000:.1f})")
    figures("server CPU s", f"{(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system):.1f}")
    assert not problems, problems[:5]
    assert not violations, violations[:5]
    assert not bad_lines, bad_lines[:5]
    assert not errors, errors[:5]
    assert len(rounds) == sessions and min(rounds) >= int(duration_s) - 1
    assert log_lines >= sessions * duration_s * 4, "every session's 200 ms periodic callback logs each tick"
    # Latency under load, on a shared 2-core CI host where client and server compete for the
    # same cores: no tab is starved. (The figures above are what the README table records.)
    assert p50 <= 0.5, f"p50 {p50 * 1000:.1f} ms"
    assert p99 <= 2.0, f"p99 {p99 * 1000:.1f} ms"


def test_concurrent_sessions_never_see_each_others_values(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """50 sessions for 30 s, each writing its nonce: 0 errors, 0 foreign values anywhere."""
    isolation_run(ks_serve_process, tmp_path, figures, sessions=50, duration_s=30)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_concurrent_sessions_soak(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """Soak: 200 sessions for 120 s."""
    isolation_run(ks_serve_process, tmp_path, figures, sessions=200, duration_s=120)


def test_sessions_initialising_at_once_on_the_thread_pool(ks_server: Any, figures: Any) -> None:
    """8 sessions whose threaded work runs at the same time each see only their own session there."""
    seen: dict[str, list[tuple[str, str]]] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8, timeout=20)

    def app() -> Any:
        own = ks.state.session_args["nonce"][0].decode()
        pane = ks.pane.Str("waiting")

        def work(tag: str) -> None:
            if tag == "execute":
                barrier.wait()  # all 8 sessions' work is in the pool at the same moment
            time.sleep(0.2)
            with lock:
                seen.setdefault(own, []).append((tag, ks.state.session_args["nonce"][0].decode()))
            pane.object = f"done {ks.state.session_args['nonce'][0].decode()}"

        ks.state.execute(lambda: work("execute"), schedule="thread")
        ks.state.onload(lambda: work("onload"), threaded=True)
        return pane

    server = ks_server(app, num_threads=16)

    async def main() -> None:
        nonces = [nonce_for(i) for i in range(8)]
        tabs = [ProtocolClient(f"{server.url}?nonce={n}") for n in nonces]
        await asyncio.gather(*[t.fetch_page() for t in tabs])
        await asyncio.gather(*[t.connect() for t in tabs])
        for tab, n in zip(tabs, nonces):
            await tab.wait_for(lambda tab=tab, n=n: f"done {n}" in tab.text())
        for tab in tabs:
            await tab.close()

    run(main)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(len(v) for v in seen.values()) < 16:
        time.sleep(0.05)
    figures("threaded callbacks checked", sum(len(v) for v in seen.values()))
    assert len(seen) == 8
    for own, calls in seen.items():
        assert sorted(tag for tag, _ in calls) == ["execute", "onload"]
        assert all(value == own for _, value in calls), (own, calls)


def test_no_patch_reaches_a_tab_before_it_pulled(ks_server: Any) -> None:
    """A busy session sends nothing but ACK until the tab has pulled the document (then patches)."""
    def app() -> Any:
        pane = ks.pane.Str("0")
        ticks = {"n": 0}

        def tick() -> None:
            ticks["n"] += 1
            pane.object = str(ticks["n"])

        ks.state.add_periodic_callback(tick, period=5)
        return pane

    server = ks_server(app)

    async def main() -> None:
        import json

        from kernelstate.endpoint import message_frames, protocol

        from .conftest import open_ws, ws_url

        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        ws = await open_ws(ws_url(server.url), tab.token)
        ack = [await ws.read_message() for _ in range(3)]
        assert json.loads(ack[0])["msgtype"] == "ACK"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.read_message(), 0.3)  # 60 ticks happened; none was sent
        for frame in message_frames(protocol.create("PULL-DOC-REQ")):
            await ws.write_message(frame)
        types = []
        while len(types) < 3:
            header = json.loads(await asyncio.wait_for(ws.read_message(), 5))
            for _ in range(2 + 2 * header.get("num_buffers", 0)):
                await ws.read_message()
            types.append(header["msgtype"])
        assert types == ["PULL-DOC-REPLY", "PATCH-DOC", "PATCH-DOC"]
        ws.close()

    run(main)
