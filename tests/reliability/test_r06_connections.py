"""R6 (issue 13, item 7): idle and half-open connections time out; running out of file
descriptors degrades gracefully.

The server process runs with its descriptor limit lowered to 256 (``prlimit``), so an attacker
can reach it quickly from a few loopback addresses:

- a connection that sends part of a request, or nothing, is closed after the idle-connection
  timeout (10 s by default; Tornado's own default is an hour);
- an attacker on 127.0.0.1 holding as many idle connections as it can does not lock out a
  visitor on 127.0.0.2 (connections per client address are capped);
- attackers on several addresses exhausting the descriptors: the server does not spin, logs a
  few lines rather than a traceback per accept, and answers 127.0.0.2 once descriptors free up.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from .conftest import run
from .loopback import close_all, get_from, is_open, open_idle, wait_closed

APP = '"""Conn"""\nimport kernelstate as ks\nks.pane.Str("connections").servable()\n'
NOFILE = 256


def serve(ks_serve_process: Any, tmp_path: Path, nofile: int | None = NOFILE) -> tuple[Any, str]:
    script = tmp_path / "conn.py"
    script.write_text(APP)
    proc = ks_serve_process(str(script))
    if nofile is not None:
        subprocess.run(["prlimit", f"--pid={proc.proc.pid}", f"--nofile={nofile}:{nofile}"], check=True)
    return proc, proc.url.rstrip("/") + "/liveness"


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def test_half_open_and_slow_connections_are_closed(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """Silent, half-sent and trickling (one header line a second) connections are all closed by the
    server within the idle-connection timeout plus slack."""
    _proc, url = serve(ks_serve_process, tmp_path, nofile=None)
    silent, partial, trickle = connect(url), connect(url), connect(url)
    partial.sendall(b"GET /liveness HTTP/1.1\r\nHost: x\r\n")
    trickle.sendall(b"GET /liveness HTTP/1.1\r\n")
    t0 = time.monotonic()
    trickled = 0
    while time.monotonic() - t0 < 30 and is_open(trickle):
        try:
            trickle.setblocking(True)
            trickle.sendall(f"X-Slow-{trickled}: 1\r\n".encode())
            trickled += 1
        except OSError:
            break
        time.sleep(1.0)
    trickle_s = time.monotonic() - t0 if not is_open(trickle) else None

    def closed_at(sock: socket.socket) -> float | None:
        waited = wait_closed(sock, max(0.1, 30 - (time.monotonic() - t0)))
        return None if waited is None else time.monotonic() - t0

    silent_s, partial_s = closed_at(silent), closed_at(partial)
    close_all([silent, partial, trickle])
    shown = " / ".join("not closed" if v is None else f"{v:.1f}" for v in (silent_s, partial_s, trickle_s))
    figures("closed after s: silent / half-sent headers / one header line a second", shown)
    assert trickle_s is not None and trickle_s <= 25, f"a trickling client was kept {trickle_s} s"
    assert silent_s is not None and partial_s is not None, "a half-open connection was not closed within 30 s"
    assert run(lambda: get_from(url, "127.0.0.1"))[0] == 200


def test_one_address_holding_idle_connections_does_not_lock_out_another(
        ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """127.0.0.1 opens as many idle connections as it can (up to 400) against a server limited to 256
    descriptors; 127.0.0.2 is answered while it holds them."""
    _proc, url = serve(ks_serve_process, tmp_path)
    held = open_idle(url, "127.0.0.1", 400)
    try:
        time.sleep(1.0)
        kept = sum(is_open(s) for s in held)
        t0 = time.monotonic()
        status, body = run(lambda: get_from(url, "127.0.0.2", timeout=8), timeout=30)
        answered = time.monotonic() - t0
    finally:
        close_all(held)
    figures("attacker connections opened / kept by the server; 127.0.0.2 answered in ms",
            f"{len(held)} / {kept}; {answered * 1000:.0f}")
    assert status == 200 and json.loads(body)["alive"]
    assert answered <= 5


def test_descriptor_exhaustion_does_not_spin_or_flood_the_log(ks_serve_process: Any, tmp_path: Path,
                                                              figures: Any) -> None:
    """Four addresses open 100 idle connections each (more than the 256 descriptors): the server's
    CPU stays low, a few lines are logged rather than a traceback per accept, and 127.0.0.2 is
    answered once the idle connections time out."""
    proc, url = serve(ks_serve_process, tmp_path)
    server = psutil.Process(proc.proc.pid)
    lines0 = len(proc.output)
    held: list[socket.socket] = []
    try:
        for i in range(4):
            held += open_idle(url, f"127.0.1.{i + 1}", 100)
        time.sleep(0.5)
        cpu = server.cpu_percent(interval=3.0)
        logged = proc.output[lines0:]
        t0 = time.monotonic()
        try:
            status: int | None = run(lambda: get_from(url, "127.0.0.2", timeout=45), timeout=60)[0]
        except (TimeoutError, OSError):
            status = None
        answered = time.monotonic() - t0
    finally:
        close_all(held)
    figures("idle connections opened; server CPU % over 3 s; log lines; 127.0.0.2 answered (status) after s",
            f"{len(held)}; {cpu:.0f}; {len(logged)}; ({status}) {answered:.1f}")
    assert any("EMFILE" in line or "Too many open files" in line for line in logged), "no descriptor exhaustion"
    assert cpu <= 50, f"the server used {cpu:.0f} % CPU while out of descriptors"
    assert len(logged) <= 20, "".join(logged[:20])
    assert not [line for line in logged if "Traceback" in line], "".join(logged[:40])
    assert status == 200, f"127.0.0.2 got {status} after {answered:.1f} s"
