"""R14: the reuse cache never carries one user's data to another, and stays bounded.

(a) Alice then Bob, differing only in a cookie, a header or a query argument, against an app
that renders that value in each of the ways ``ks.state`` exposes it: Bob's HTML and decoded
token hold none of Alice's sentinel, and his live document shows his own value.
(b) 1,000 distinct keys against a real server process: at most 32 pages cached, no session
pinned, and RSS back within 20 MB once the sessions expire.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import kernelstate as ks
from kernelstate.testing import ProtocolClient, token_from_html

from .conftest import fetch, run

READS = {
    "cookie item": lambda: ks.state.cookies["user"],
    "cookie get": lambda: ks.state.cookies.get("user"),
    "cookies iterated": lambda: ";".join(f"{k}={v}" for k, v in ks.state.cookies.items()),
    "header item": lambda: ks.state.headers["X-User"],
    "headers repr": lambda: repr(ks.state.headers),
    "query argument": lambda: ks.state.session_args["user"][0].decode(),
    "request object": lambda: ks.state.request.cookies["user"],
    "request url": lambda: ks.state.request.url,
    "session request": lambda: ks.state.session.request.cookies["user"],
}


def request_for(who: str) -> tuple[str, dict[str, str]]:
    sentinel = f"{who}-S3NT1NEL"
    return f"?user={sentinel}", {"Cookie": f"user={sentinel}", "X-User": sentinel}


@pytest.mark.parametrize("read", list(READS))
def test_a_cached_page_never_shows_the_previous_user(ks_server: Any, read: str) -> None:
    """Whatever way the app reads the request, Bob never gets Alice's value (page, token or document)."""
    reader = READS[read]

    def app() -> Any:
        value = reader()
        ks.state.template.title = f"Dashboard of {value}"
        return ks.pane.Markdown(f"Hello {value}")

    server = ks_server(app, reuse_sessions=True)

    async def visit(who: str) -> tuple[str, ProtocolClient]:
        query, headers = request_for(who)
        tab = ProtocolClient(server.url + query, headers=headers)
        await tab.fetch_page()
        return tab.html, tab

    async def main() -> None:
        alice_html, alice = await visit("alice")
        assert "alice-S3NT1NEL" in alice_html
        for _ in range(2):  # the second visit is a cache hit if anything was cached
            bob_html, bob = await visit("bob")
            body = bob.token.split(".")[0]
            token = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
            assert "alice" not in bob_html.lower(), f"{read}: Alice's value in Bob's page"
            assert "alice" not in token.lower()
            await bob.connect()
            assert "alice" not in bob.text().lower() and "bob-S3NT1NEL" in bob.text()
            await bob.close()

    run(main)


def test_the_cache_is_bounded_and_pins_nothing(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """1,000 keys (?theme=...): <= 32 pages kept, sessions expire, server RSS within 20 MB of before."""
    app = tmp_path / "themed.py"
    runs = tmp_path / "runs.txt"
    app.write_text('"""Themed"""\nimport kernelstate as ks\n'
                   f'with open({str(runs)!r}, "a") as f:\n    f.write("run\\n")\n'
                   'ks.pane.Str("themed page " * 50).servable()\n')
    setup = tmp_path / "setup.py"
    setup.write_text("import kernelstate as ks\n"
                     "ks.config.session_key_func = lambda r: (r.path, r.query_arguments.get('theme', [b''])[0])\n")
    # One test client plays 1,000 visitors: lift the per-client share (R6 tests it).
    proc = ks_serve_process(str(app), "--reuse-sessions", "--setup", str(setup), "--max-sessions-per-client", "0",
                            "--unused-session-lifetime", "500", "--check-unused-sessions", "200")
    url = proc.url.rstrip("/") + "/themed"
    server = psutil.Process(proc.proc.pid)

    async def sessions() -> int:
        return int(json.loads((await fetch(proc.url.rstrip("/") + "/liveness")).body)["sessions"])

    async def main() -> tuple[float, float, float]:
        for i in range(20):  # warm-up
            await fetch(f"{url}?theme=warm{i}")
        await asyncio.sleep(1.5)
        rss0 = server.memory_info().rss / 2**20
        tokens = set()
        t0 = time.monotonic()
        for i in range(0, 1000, 10):
            pages = await asyncio.gather(*[fetch(f"{url}?theme=t{j}") for j in range(i, i + 10)])
            assert all(p.code == 200 for p in pages)
            tokens.update(token_from_html(p.body.decode()) for p in pages)
        elapsed = time.monotonic() - t0
        peak = server.memory_info().rss / 2**20 - rss0
        # Every new key rendered once; then the 32 most recent keys are hits, older ones misses.
        assert len(runs.read_text().splitlines()) == 1020
        for j in (999, 970):
            await fetch(f"{url}?theme=t{j}")
        assert len(runs.read_text().splitlines()) == 1020
        for j in (500, 0):
            await fetch(f"{url}?theme=t{j}")
        assert len(runs.read_text().splitlines()) == 1022
        deadline = time.monotonic() + 10
        while await sessions() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await sessions() == 0, "the cache pinned sessions"
        await asyncio.sleep(0.5)
        after = server.memory_info().rss / 2**20 - rss0
        assert len(tokens) == 1000
        return elapsed, peak, after

    elapsed, peak, after = run(main)
    figures("1,000 keys: seconds, RSS peak / after expiry MB", f"{elapsed:.1f}, {peak:+.1f} / {after:+.1f}")
    assert after <= 20
