"""R6: size, rate and session limits.

- a frame over ``websocket_max_message_size`` is refused with 1009, one at the limit is not;
- a message whose frames add up to more than that limit (``num_buffers`` plus big buffers) is
  refused too, so one connection cannot park ``64 x max size`` in the server;
- a client that floods frames, or asks for replies and never reads them, cannot starve other
  sessions or grow the server's memory without bound;
- PUSH-DOC from a client is refused and changes nothing;
- ``max_sessions``: request N+1 gets 503 with ``Retry-After`` and a clear message; existing
  sessions are unaffected.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from bokeh.models import TextInput

from kernelstate.endpoint import message_frames, protocol
from kernelstate.testing import ProtocolClient

from .conftest import RawWebSocket, fetch, percentile, run, wait_until

LIMIT = 64 * 1024

APP = '''"""Limits"""
import kernelstate as ks

text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
text.param.watch(lambda e: setattr(echo, "object", f"echo {e.new}"), "value")
ks.Column(text, echo, *[ks.pane.Str("filler " * 20) for _ in range(20)]).servable()
'''


def serve(ks_serve_process: Any, tmp_path: Path, *args: str) -> tuple[Any, str]:
    script = tmp_path / "limits.py"
    script.write_text(APP)
    proc = ks_serve_process(str(script), "--websocket-max-message-size", str(LIMIT), *args)
    return proc, proc.url.rstrip("/") + "/limits"


def page_token(url: str) -> str:
    async def get() -> str:
        tab = ProtocolClient(url)
        await tab.fetch_page()
        return tab.token
    return str(run(get))


def header(msgtype: str, nbuf: int = 0) -> str:
    return json.dumps({"msgid": "m", "msgtype": msgtype, "num_buffers": nbuf})


def test_frame_over_the_limit_is_refused_with_1009(ks_serve_process: Any, tmp_path: Path) -> None:
    """A frame announcing limit+1 bytes gets close 1009; a message of exactly the limit is served."""
    proc, url = serve(ks_serve_process, tmp_path)
    ws = RawWebSocket(url, page_token(url))
    assert ws.status == 101
    ws.read_frame(), ws.read_frame(), ws.read_frame()  # ACK
    ws.send(RawWebSocket.frame(b"", opcode=0x2, length=LIMIT + 1)[:14])  # the frame header alone
    assert ws.read_close() == (1009, "message too big")
    ws.close()

    # A message of exactly the limit (all its frames together) is answered; one byte more is refused.
    for extra, answered in ((0, True), (1, False)):
        ws = RawWebSocket(url, page_token(url))
        ws.read_frame(), ws.read_frame(), ws.read_frame()
        padded = header("SERVER-INFO-REQ")
        padded += " " * (LIMIT - 4 - len(padded) + extra)
        ws.send(RawWebSocket.frame(padded) + RawWebSocket.frame("{}") + RawWebSocket.frame("{}"))
        if answered:
            opcode, payload = ws.read_frame()
            assert opcode == 0x1 and json.loads(payload)["msgtype"] == "SERVER-INFO-REPLY"
        else:
            assert ws.read_close() == (1009, "message too big")
        ws.close()


def test_buffers_cannot_add_up_past_the_limit(ks_serve_process: Any, tmp_path: Path) -> None:
    """num_buffers=8 with 8 buffers of 0.75 x limit: the connection is closed before the message completes."""
    proc, url = serve(ks_serve_process, tmp_path)
    server = psutil.Process(proc.proc.pid)
    ws = RawWebSocket(url, page_token(url))
    ws.read_frame(), ws.read_frame(), ws.read_frame()
    chunk = b"\x00" * (LIMIT * 3 // 4)
    frames = [RawWebSocket.frame(header("PATCH-DOC", 8)), RawWebSocket.frame("{}"),
              RawWebSocket.frame('{"events": []}')]
    for i in range(8):
        frames += [RawWebSocket.frame(json.dumps({"id": f"b{i}"})), RawWebSocket.frame(chunk)]
    t0 = time.monotonic()
    try:
        ws.send(b"".join(frames))
    except OSError:
        pass  # the server may already have dropped us
    code, reason = ws.read_close()
    assert code == 1009 and time.monotonic() - t0 < 1.0, (code, reason)
    ws.close()
    # The lie "num_buffers: 2" followed by text frames closes at once too.
    ws = RawWebSocket(url, page_token(url))
    ws.read_frame(), ws.read_frame(), ws.read_frame()
    ws.send(b"".join(RawWebSocket.frame(f) for f in [header("PATCH-DOC", 2), "{}", '{"events": []}', "text"]))
    code, reason = ws.read_close(1.0)
    assert code is not None and 4000 <= code <= 4999, (code, reason)
    ws.close()
    assert server.is_running()


def measure_rtts(url: str, seconds: float) -> list[float]:
    async def main() -> list[float]:
        rtts = []
        async with ProtocolClient(url, timeout=30) as tab:
            box = tab.find(TextInput)[0]
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:
                t0 = time.perf_counter()
                await tab.set(box, "value", f"v{i}")
                rtts.append(time.perf_counter() - t0)
                i += 1
                await asyncio.sleep(0.02)
        return rtts
    return list(run(main, timeout=seconds + 60))


def flood(url: str, message: str, rate: int, seconds: float, stop: threading.Event, sent: list[int],
          read: bool = False) -> None:
    """Send ``rate`` frames/s (messages of 3 frames) for ``seconds``; optionally never read replies."""
    ws = RawWebSocket(url, page_token(url))
    for _ in range(3):
        ws.read_frame()
    one = b"".join(RawWebSocket.frame(f) for f in [header(message), "{}", "{}"])
    batch = one * max(1, rate // 3 // 100)  # every 10 ms
    ws.sock.settimeout(0.5)
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    try:
        while time.monotonic() < end and not stop.is_set():
            ws.send(batch)
            sent[0] += 3 * (len(batch) // len(one))
            next_at += 0.01
            time.sleep(max(0.0, next_at - time.monotonic()))
    except OSError:
        sent.append(-1)  # the server closed us
    finally:
        ws.close()


@pytest.mark.parametrize("message", ["ACK", "PULL-DOC-REQ"])
def test_flooding_client_does_not_starve_others(ks_serve_process: Any, tmp_path: Path, figures: Any, message: str) -> None:
    """10,000 frames/s from one client (ACKs; or document pulls whose replies it never reads): others keep
    their latency, the server's memory stays bounded, and the flooder's exit logs nothing alarming."""
    proc, url = serve(ks_serve_process, tmp_path)
    server = psutil.Process(proc.proc.pid)
    base = measure_rtts(url, 2.0)
    rss0 = server.memory_info().rss / 2**20
    stop = threading.Event()
    sent = [0]
    flooder = threading.Thread(target=flood, args=(url, message, 10_000, 5.0, stop, sent))
    flooder.start()
    try:
        time.sleep(1.0)
        loaded = measure_rtts(url, 3.0)
        rss1 = server.memory_info().rss / 2**20
    finally:
        stop.set()
        flooder.join(15)
    time.sleep(0.5)
    p50, p99, base_p50, base_p99 = (percentile(loaded, 50), percentile(loaded, 99),
                                    percentile(base, 50), percentile(base, 99))
    figures(f"{message} flood: frames sent", sent[0])
    figures(f"{message} flood: other tab p50/p99 ms (alone)",
            f"{p50 * 1000:.1f}/{p99 * 1000:.1f} ({base_p50 * 1000:.1f}/{base_p99 * 1000:.1f})")
    figures(f"{message} flood: server RSS growth MB", f"{rss1 - rss0:+.1f}")
    assert sent[0] >= 10_000 * 3 or -1 in sent
    assert len(loaded) >= 30, "the other tab barely got a turn"
    # The other tab's typical round trip stays within 2x its own (plus the service time of the one
    # flooder message it may queue behind), and its worst case is far from starvation. Ratios of p99s
    # on a shared 2-core host measure the neighbours more than the server, so p99 gets a fixed bound.
    assert p50 <= 2 * base_p50 + 0.05, f"p50 {p50 * 1000:.1f} ms vs {base_p50 * 1000:.1f} ms alone"
    assert p99 <= 0.5, f"p99 {p99 * 1000:.1f} ms"
    assert rss1 - rss0 <= 100, f"the server grew {rss1 - rss0:.0f} MB for one flooding client"
    assert not [line for line in proc.output if "Traceback" in line or " ERROR " in line], proc.log_text()[-2000:]


def test_push_doc_from_a_client_is_refused(ks_serve_process: Any, tmp_path: Path) -> None:
    """PUSH-DOC gets an ERROR reply, and the session's document is unchanged."""
    proc, url = serve(ks_serve_process, tmp_path)

    async def main() -> None:
        from bokeh.document import Document
        from bokeh.models import Div

        async with ProtocolClient(url) as tab:
            evil = Document()
            evil.add_root(Div(text="pwned"))
            reply = await tab.request(protocol.create("PUSH-DOC", evil))
            assert reply.msgtype == "ERROR" and "not allowed" in reply.content["text"]
            again = ProtocolClient(url)
            again.token = tab.token
            await again.connect()
            assert "pwned" not in again.text() and "filler" in again.text()
            await again.close()
            await tab.set(tab.find(TextInput)[0], "value", "ok")
            await tab.wait_for(lambda: "echo ok" in tab.text())

    run(main)


def test_session_cap_answers_503_and_spares_existing_sessions(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """--max-sessions 3: the 4th GET is 503 with Retry-After and a message; the 3 tabs keep working."""
    proc, url = serve(ks_serve_process, tmp_path, "--max-sessions", "3", "--max-sessions-per-client", "3",
                      "--unused-session-lifetime", "300", "--check-unused-sessions", "100")

    async def main() -> None:
        tabs = [ProtocolClient(url) for _ in range(3)]
        for tab in tabs:
            await tab.fetch_page()
            await tab.connect()
        refused = await fetch(url)
        body = refused.body.decode()
        assert refused.code == 503 and refused.headers.get("Retry-After", "").isdigit()
        assert "limit of 3 sessions" in body and "Try again" in body
        figures("503 page says", body[body.find("the server is at"):][:60])
        for i, tab in enumerate(tabs):
            await tab.set(tab.find(TextInput)[0], "value", f"still {i}")
            await tab.wait_for(lambda tab=tab, i=i: f"echo still {i}" in tab.text())
        await tabs[0].close()
        for _ in range(50):
            if (await fetch(url)).code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a freed slot was never offered again")
        for tab in tabs[1:]:
            await tab.close()

    run(main)


BIG_APP = '''"""Big page"""
import kernelstate as ks

ks.Column(ks.pane.Str("x" * 200_000), ks.widgets.TextInput(name="text")).servable()
'''


def test_client_that_never_reads_cannot_grow_the_server(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """A tab that keeps asking for a 200 KB document and never reads the replies is dropped at the write-buffer cap."""
    script = tmp_path / "big.py"
    script.write_text(BIG_APP)
    proc = ks_serve_process(str(script), "--websocket-max-message-size", str(LIMIT))
    url = proc.url.rstrip("/") + "/big"
    server = psutil.Process(proc.proc.pid)
    rss0 = server.memory_info().rss / 2**20
    ws = RawWebSocket(url, page_token(url))
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pull = b"".join(RawWebSocket.frame(f) for f in [header("PULL-DOC-REQ"), "{}", "{}"])
    ws.sock.settimeout(0.5)
    dropped_after = None
    t0 = time.monotonic()
    peak = 0.0
    while time.monotonic() - t0 < 20:
        try:
            ws.send(pull * 5)
        except OSError:
            dropped_after = time.monotonic() - t0
            break
        peak = max(peak, server.memory_info().rss / 2**20 - rss0)
        time.sleep(0.01)
    ws.close()
    figures("never-reading client: dropped after s, server RSS peak growth MB", f"{dropped_after}, {peak:+.0f}")
    assert dropped_after is not None, f"still connected after 20 s; server RSS grew {peak:.0f} MB"
    assert peak <= 64, f"server RSS grew {peak:.0f} MB before the client was dropped"
    assert wait_until(lambda: any("not reading" in line for line in proc.output), 5), proc.log_text()[-1000:]
    assert not [line for line in proc.output if "Traceback" in line], proc.log_text()[-2000:]
