"""R6 (issue 13, item 6): cheap requests hold little.

- thousands of cached-page GETs (``--reuse-sessions``) with large headers from many client
  addresses: the pending sessions they leave stay within a bounded amount of memory;
- a page whose WebSocket never connects releases its ``--max-sessions`` slot after the
  first-connect window (5 s by default), and its WebSocket, arriving later with a still-valid
  token, still gets a working session;
- one client address cannot take more than its share of sessions (default 100 without
  ``--max-sessions``): beyond it 503, while another address is still served.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
from bokeh.models import TextInput

from kernelstate.testing import ProtocolClient, token_from_html

from .conftest import run
from .loopback import KeepAliveClient, get_from

APP = '''"""Cheap"""
import kernelstate as ks

text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
text.param.watch(lambda e: setattr(echo, "object", f"echo {e.new}"), "value")
ks.Column(text, echo).servable()
'''


def serve(ks_serve_process: Any, tmp_path: Path, *args: str) -> tuple[Any, str]:
    script = tmp_path / "cheap.py"
    script.write_text(APP)
    proc = ks_serve_process(str(script), *args)
    return proc, proc.url.rstrip("/") + "/cheap"


def liveness(proc: Any) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        status, body = await get_from(proc.url.rstrip("/") + "/liveness", "127.0.0.1")
        assert status == 200
        return dict(json.loads(body))
    return dict(run(get))


def test_pending_sessions_from_large_header_gets_stay_bounded(ks_serve_process: Any, tmp_path: Path,
                                                              figures: Any) -> None:
    """6,000 cached-page GETs with a 12 KB header, 100 from each of 60 addresses: RSS grows by a
    bounded amount (today each GET pins its headers for the 300 s token lifetime: ~80 MB)."""
    proc, url = serve(ks_serve_process, tmp_path, "--reuse-sessions", "--warm")
    server = psutil.Process(proc.proc.pid)
    path = "/cheap"
    per_address, addresses, pad = 100, 60, 12 * 1024

    async def flood() -> dict[int, int]:
        codes: dict[int, int] = {}

        async def one_address(i: int) -> None:
            client = KeepAliveClient(url, f"127.0.{1 + i // 200}.{1 + i % 200}")
            try:
                for n in range(per_address):
                    status, _ = await client.get(path, {"X-Pad": os.urandom(pad // 2).hex()})
                    codes[status] = codes.get(status, 0) + 1
            finally:
                await client.close()

        for i in range(0, addresses, 12):
            await asyncio.gather(*[one_address(j) for j in range(i, min(addresses, i + 12))])
        return codes

    for _ in range(5):  # warm-up: the allocator and the page cache reach their steady state
        assert run(lambda: get_from(url, "127.0.0.1"))[0] == 200
    rss0 = server.memory_info().rss / 2**20
    t0 = time.monotonic()
    codes = run(flood, timeout=600)
    elapsed = time.monotonic() - t0
    growth = server.memory_info().rss / 2**20 - rss0
    state = liveness(proc)
    figures("6,000 GETs x 12 KB header, 60 addresses: s, 200/503, pending kept, RSS growth MB",
            f"{elapsed:.1f}, {codes.get(200, 0)}/{codes.get(503, 0)}, {state.get('pending')}, {growth:+.1f}")
    assert sum(codes.values()) == per_address * addresses and set(codes) <= {200, 503}, codes
    assert growth <= 40, f"the server grew {growth:.0f} MB for {per_address * addresses} cheap GETs"
    # Once the first-connect windows have passed, new visitors are served again.
    time.sleep(6)
    assert run(lambda: get_from(url, "127.0.0.2"))[0] == 200

    # A request too large to keep pending is served as a full session instead (counted as one).
    async def large() -> list[int]:
        client = KeepAliveClient(url, "127.0.0.3")
        try:
            return [(await client.get(path, {"X-Pad": "x" * 40_000}))[0] for _ in range(5)]
        finally:
            await client.close()

    before = liveness(proc)["sessions"]
    assert run(large) == [200] * 5
    assert liveness(proc)["sessions"] >= before + 5


def test_unconnected_pages_release_their_slots_and_late_websockets_still_work(
        ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """--max-sessions 4 filled by page GETs that never connect: the slots are free again within
    the first-connect window (plus slack), not after the unused-session lifetime; a WebSocket
    arriving after that with one of those pages' tokens gets a working session."""
    _proc, url = serve(ks_serve_process, tmp_path, "--max-sessions", "4")

    async def main() -> tuple[float, float]:
        tokens = []
        for address in ("127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"):
            status, body = await get_from(url, address)
            assert status == 200, body[:300]
            tokens.append(token_from_html(body.decode()))
        filled = time.monotonic()
        status, body = await get_from(url, "127.0.0.5")
        assert status == 503 and b"limit of 4 sessions" in body
        freed = None
        while time.monotonic() - filled < 12:
            await asyncio.sleep(0.25)
            status, _ = await get_from(url, "127.0.0.5")
            if status == 200:
                freed = time.monotonic() - filled
                break
        assert freed is not None, "no slot was released within 12 s of the pages not connecting"
        # A slow page load: its WebSocket comes now, with its still-valid token.
        late = ProtocolClient(url, timeout=30)
        late.token = tokens[0]
        await late.connect()
        try:
            await late.set(late.find(TextInput)[0], "value", "late")
            await late.wait_for(lambda: "echo late" in late.text())
        finally:
            await late.close()
        return freed, time.monotonic() - filled

    freed, late_at = run(main)
    figures("--max-sessions 4 filled by unconnected pages: slot free after s; late WebSocket at s worked",
            f"{freed:.1f}; {late_at:.1f}")


def test_one_client_address_cannot_take_every_session(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """100 cached-page GETs from 127.0.0.1 take its share; the 101st gets 503 naming the address's
    limit, and 127.0.0.2 is still served."""
    _proc, url = serve(ks_serve_process, tmp_path, "--reuse-sessions", "--warm")

    async def main() -> tuple[list[int], int, bytes, int]:
        clients = [KeepAliveClient(url, "127.0.0.1") for _ in range(4)]
        codes: list[int] = []

        async def some(client: KeepAliveClient, n: int) -> None:
            for _ in range(n):
                codes.append((await client.get("/cheap"))[0])

        try:
            await asyncio.gather(*[some(c, 25) for c in clients])
            status, body = await clients[0].get("/cheap")
        finally:
            for c in clients:
                await c.close()
        other, _ = await get_from(url, "127.0.0.2")
        return codes, status, body, other

    codes, status, body, other = run(main)
    text = body.decode()
    figures("one address, 101 GETs within the first-connect window: 200s, then", f"{codes.count(200)}, {status}")
    assert codes == [200] * 100
    assert status == 503 and "127.0.0.1" in text and "limit of 100 sessions" in text, text[:500]
    assert other == 200
