"""--reuse-sessions: cached pages by key, never another user's data; bounded; verify; warm."""
from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

import kernelstate as ks
from kernelstate.testing import ProtocolClient

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


async def get(url: str, **headers: str) -> str:
    response = await AsyncHTTPClient().fetch(HTTPRequest(url, headers=headers), raise_error=False)
    assert response.code == 200, response.body[:500]
    return response.body.decode()


def title(html: str) -> str:
    m = re.search(r"<title>(.*?)</title>", html)
    assert m is not None
    return m.group(1)


def test_cached_page_for_same_key_and_fresh_session_per_request(ks_server: Any) -> None:
    """Same key: the cached page with a new token; its session is created, for this request, on connect."""
    ran_for: list[str] = []

    def app() -> Any:
        md = ks.pane.Markdown("waiting")
        ks.state.onload(lambda: setattr(md, "object", f"hello {ks.state.cookies.get('user')}"))
        ran_for.append("run")
        return md

    server = ks_server(app, reuse_sessions=True)

    async def main() -> None:
        first = await get(server.url, Cookie="user=alice")
        second = await get(server.url, Cookie="user=bob")
        assert server.reuse.hits == 1 and len(server.reuse) == 1
        assert ran_for == ["run"], "a cache hit must not run the app before the WebSocket connects"
        t1 = re.search(r'"token": "([^"]+)"', first).group(1)
        t2 = re.search(r'"token": "([^"]+)"', second).group(1)
        assert t1 != t2
        a = ProtocolClient(server.url, headers={"Cookie": "user=alice"})
        a.token = t1
        b = ProtocolClient(server.url, headers={"Cookie": "user=bob"})
        b.token = t2
        await a.connect()
        await b.connect()
        await a.wait_for(lambda: "hello alice" in a.text())
        await b.wait_for(lambda: "hello bob" in b.text())
        assert a.session_id != b.session_id and ran_for == ["run", "run"]
        await a.close()
        await b.close()

    asyncio.run(main())


def test_request_dependent_page_is_not_cached_and_never_leaks(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An app whose title reads a cookie the key ignores: warning, no caching, no leak (Panel's bug)."""
    def app() -> Any:
        ks.state.template.title = f"Dashboard of {ks.state.cookies.get('user')}"
        return ks.pane.Markdown("x")

    server = ks_server(app, reuse_sessions=True)

    async def main() -> None:
        first = await get(server.url, Cookie="user=alice-SENTINEL")
        second = await get(server.url, Cookie="user=bob")
        assert title(first) == "Dashboard of alice-SENTINEL"
        assert "alice-SENTINEL" not in second and title(second) == "Dashboard of bob"

    with caplog.at_level(logging.WARNING, logger="kernelstate.reuse"):
        asyncio.run(main())
    assert len(server.reuse) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "kernelstate.reuse"]
    assert len(warnings) == 1 and "ks.state.cookies['user']" in warnings[0] and "session_key_func" in warnings[0]


def test_city_example_one_page_per_city(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """?city=Paris and ?city=Berlin get their own cached pages with their own titles."""
    server = ks_server(str(ROOT / "examples" / "weather.py"), reuse_sessions=True)

    async def main() -> None:
        for _ in range(2):
            paris = await get(server.url + "weather?city=Paris")
            berlin = await get(server.url + "weather?city=Berlin")
            assert title(paris) == "Weather in Paris" and title(berlin) == "Weather in Berlin"
        assert len(server.reuse) == 2 and server.reuse.hits == 2

    with caplog.at_level(logging.WARNING, logger="kernelstate.reuse"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.name == "kernelstate.reuse"]


def test_key_that_ignores_city_warns_instead_of_leaking(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A key function that ignores ?city= triggers the warning; Paris never sees Berlin's title."""
    def app() -> Any:
        city = ks.state.session_args.get("city", [b"London"])[0].decode()
        ks.state.template.title = f"Weather in {city}"
        return ks.pane.Markdown(city)

    ks.config.session_key_func = lambda request: request.path
    try:
        server = ks_server(app, reuse_sessions=True)

        async def main() -> None:
            await get(server.url + "?city=Berlin")
            paris = await get(server.url + "?city=Paris")
            assert title(paris) == "Weather in Paris" and "Berlin" not in paris

        with caplog.at_level(logging.WARNING, logger="kernelstate.reuse"):
            asyncio.run(main())
    finally:
        ks.config.session_key_func = None
    assert any("session_args['city']" in r.getMessage() for r in caplog.records if r.name == "kernelstate.reuse")
    assert len(server.reuse) == 0


def test_key_function_that_raises_falls_back_and_logs_once(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A failing key function: uncached pages, one log line."""
    def bad_key(request: Any) -> Any:
        raise KeyError("no")

    ks.config.session_key_func = bad_key
    try:
        server = ks_server(lambda: ks.pane.Markdown("x"), reuse_sessions=True)
        with caplog.at_level(logging.WARNING, logger="kernelstate.reuse"):
            for _ in range(3):
                asyncio.run(get(server.url))
    finally:
        ks.config.session_key_func = None
    assert len(server.reuse) == 0
    assert len([r for r in caplog.records if "session_key_func raised" in r.getMessage()]) == 1


def test_lru_bound_after_1000_keys(ks_server: Any) -> None:
    """1,000 distinct keys leave at most --reuse-sessions-max-keys (32) cached pages."""
    ks.config.session_key_func = lambda r: r.query_arguments.get("k", [b""])[0]
    try:
        server = ks_server(lambda: ks.pane.Markdown("x"), reuse_sessions=True,
                           unused_session_lifetime_ms=50, check_unused_sessions_ms=50)

        async def main() -> None:
            for i in range(1000):
                await get(server.url + f"?k={i}")
            # Every render's session was never connected: the sweep (every 50 ms) expires them all.
            for _ in range(200):
                if len(server.manager) == 0:
                    break
                await asyncio.sleep(0.05)

        asyncio.run(main())
    finally:
        ks.config.session_key_func = None
    assert len(server.reuse) == 32
    assert len(server.manager) == 0, "cached pages must not pin sessions"


def test_verify_mode_reports_a_planted_difference(ks_server: Any) -> None:
    """--reuse-sessions=verify renders fresh on hits and reports differences."""
    def app() -> Any:
        n = ks.state.cache.get("verify-count", 0) + 1
        ks.state.cache["verify-count"] = n
        ks.state.template.title = f"render {n}"
        return ks.pane.Markdown("x")

    server = ks_server(app, reuse_sessions="verify")
    try:
        for _ in range(2):
            asyncio.run(get(server.url))
    finally:
        ks.state.cache.pop("verify-count", None)
    assert server.reuse.hits == 1
    assert any("title differs" in d and "render 1" in d and "render 2" in d for d in server.reuse.differences)


def test_warm_reports_failing_app_and_caches_the_others(ks_serve_process: Any) -> None:
    """--warm runs every app once at startup; a failing app is reported and the server keeps serving."""
    proc = ks_serve_process(str(APPS / "counter.py"), str(APPS / "broken.py"), "--warm", "--reuse-sessions")
    base = proc.url.rstrip("/")

    async def main() -> None:
        for _ in range(50):
            if "warmed 2 app(s)" in proc.log_text():
                break
            await asyncio.sleep(0.1)
        async with ProtocolClient(base + "/counter") as tab:
            assert "Hello anonymous" in tab.text()

    asyncio.run(main())
    log = proc.log_text()
    assert "warming 1/2: /counter" in log and "warming 2/2: /broken" in log
    assert "warming /broken failed: ZeroDivisionError" in log
