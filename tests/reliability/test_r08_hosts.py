"""R8 hosts: DNS rebinding. A real ``kernelstate serve`` answers only to its own names.

A page at ``http://evil.example:PORT`` whose name is re-pointed at 127.0.0.1
is, to the browser, same-origin with the server: it sends ``Host`` and
``Origin`` naming evil.example and ``Sec-Fetch-Site: same-origin``. Every
route must refuse that ``Host`` with 403 (no page, no token), and the
WebSocket's origin check must run even when ``Origin`` equals ``Host`` (Tornado
skips ``check_origin`` then). The end-to-end case runs headless Chromium with
``--host-resolver-rules`` mapping evil.example to 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from kernelstate.testing import ProtocolClient

from .conftest import fetch, open_ws, run

APP = "import kernelstate as ks\nks.pane.Str('rebinding target').servable()\n"
CHROMIUM = os.environ.get("KERNELSTATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def serve(ks_serve_process: Any, tmp_path: Path, *args: str) -> Any:
    """``kernelstate serve`` on two apps (so ``/`` is the index); returns the ServeProcess."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(APP)
    return ks_serve_process(str(tmp_path), *args)


def routes(port: int) -> dict[str, str]:
    """One path per route kind (the WebSocket is opened separately)."""
    base = f"http://127.0.0.1:{port}"
    return {"page": base + "/a", "index": base + "/", "bokehjs": base + "/static/js/bokeh.min.js",
            "ks-static": base + "/ks-static/css/kernelstate.css", "liveness": base + "/liveness",
            "unknown": base + "/no/such/path"}


async def page_token(port: int) -> str:
    tab = ProtocolClient(f"http://127.0.0.1:{port}/a")
    await tab.fetch_page()
    return tab.token


async def upgrade(port: int, token: str, host: str, origin: str | None, **headers: str) -> int:
    """The status of a WebSocket upgrade to ``/a/ws``: 101, or the refusal's HTTP code."""
    try:
        ws = await open_ws(f"ws://127.0.0.1:{port}/a/ws", token, origin=origin, headers={"Host": host, **headers})
    except HTTPClientError as exc:
        return exc.code
    ws.close()
    return 101


def sessions(port: int) -> int:
    async def read() -> int:
        response = await fetch(f"http://127.0.0.1:{port}/liveness")
        return int(json.loads(response.body)["sessions"])
    return int(run(read))


def test_a_foreign_host_is_refused_on_every_route(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """Host evil.example:PORT: 403 with a clear page and a log line on every route kind, WebSocket and 404s
    included; the server's own names (127.0.0.1, localhost, [::1] on its port) are answered."""
    proc = serve(ks_serve_process, tmp_path)
    port, evil = proc.port, f"evil.example:{proc.port}"

    async def main() -> tuple[int, int]:
        refused = 0
        for kind, url in routes(port).items():
            for method in ("GET", "POST"):
                response = await fetch(url, method=method, headers={"Host": evil},
                                       body=b"" if method == "POST" else None)
                body = response.body.decode()
                assert response.code == 403, (kind, method, response.code)
                assert "Host not allowed" in body and "evil.example" in body and "bokeh" not in body, (kind, body)
            refused += 1
        token = await page_token(port)
        assert await upgrade(port, token, evil, None) == 403
        assert await upgrade(port, token, evil, f"http://{evil}", **{"Sec-Fetch-Site": "same-origin"}) == 403
        refused += 1
        accepted = 0
        for name in ("127.0.0.1", "localhost", "[::1]"):
            own = f"{name}:{port}"
            expected = {"page": 200, "index": 200, "bokehjs": 200, "ks-static": 200, "liveness": 200, "unknown": 404}
            for kind, url in routes(port).items():
                assert (await fetch(url, headers={"Host": own})).code == expected[kind], (own, kind)
            assert await upgrade(port, await page_token(port), own, f"http://{own}") == 101, own
            accepted += 1
        return refused, accepted

    refused, accepted = run(main)
    log = proc.log_text()
    assert f"Host '{evil}' is not one of this server's hosts" in log and f"--allow-host {evil}" in log
    figures("route kinds refusing Host evil.example:PORT with 403", f"{refused}/7 (page, index, BokehJS, "
            "ks-static, liveness, WebSocket, unknown path; GET and POST)")
    figures("own names answered on every route", f"{accepted}/3")


def test_websocket_with_origin_equal_to_host_is_refused(ks_serve_process: Any, tmp_path: Path) -> None:
    """Origin == Host == evil.example:PORT with Sec-Fetch-Site: same-origin (what a rebound page sends): 403."""
    proc = serve(ks_serve_process, tmp_path)
    port, evil = proc.port, f"evil.example:{proc.port}"

    async def main() -> None:
        token = await page_token(port)
        for site in ("same-origin", "none", None):
            extra = {"Sec-Fetch-Site": site} if site else {}
            assert await upgrade(port, token, evil, f"http://{evil}", **extra) == 403, site

    run(main)
    assert sessions(port) == 1   # the page the token came from; nothing more was created


def test_origin_is_checked_even_when_the_host_is_allowed(ks_serve_process: Any, tmp_path: Path) -> None:
    """--allow-host '*' opens the pages to any name, not the WebSockets: Origin == Host == evil.example is
    still refused; the server's own origin is accepted; an --allow-host name's own pages may connect."""
    proc = serve(ks_serve_process, tmp_path, "--allow-host", "*", "--allow-host", "dash.example")
    port, evil = proc.port, f"evil.example:{proc.port}"

    async def main() -> None:
        assert (await fetch(f"http://127.0.0.1:{port}/a", headers={"Host": evil})).code == 200
        token = await page_token(port)
        assert await upgrade(port, token, evil, f"http://{evil}", **{"Sec-Fetch-Site": "same-origin"}) == 403
        assert await upgrade(port, token, "dash.example", "https://dash.example") == 101
        assert await upgrade(port, await page_token(port), f"localhost:{port}", f"http://localhost:{port}") == 101

    run(main)
    assert f"refused WebSocket from origin 'http://{evil}'" in proc.log_text()


def test_behind_a_proxy_the_forwarded_host_is_checked(ks_serve_process: Any, tmp_path: Path) -> None:
    """--use-xheaders: X-Forwarded-Host (first value) is the host checked; without it, it is ignored."""
    proxied = serve(ks_serve_process, tmp_path, "--use-xheaders", "--allow-host", "dash.example")
    port = proxied.port

    async def main() -> None:
        url = f"http://127.0.0.1:{port}/a"
        forwarded = {"Host": f"127.0.0.1:{port}", "X-Forwarded-Proto": "https"}
        assert (await fetch(url, headers={**forwarded, "X-Forwarded-Host": "dash.example"})).code == 200
        assert (await fetch(url, headers={**forwarded, "X-Forwarded-Host": "dash.example, evil.example"})).code == 200
        assert (await fetch(url, headers={**forwarded, "X-Forwarded-Host": "evil.example"})).code == 403
        assert (await fetch(url, headers={**forwarded, "X-Forwarded-Host": "evil.example, dash.example"})).code == 403
        token = await page_token(port)
        assert await upgrade(port, token, f"127.0.0.1:{port}", "https://dash.example",
                             **{"X-Forwarded-Host": "dash.example", "X-Forwarded-Proto": "https"}) == 101

    run(main)


def test_forwarded_host_is_ignored_without_use_xheaders(ks_serve_process: Any, tmp_path: Path) -> None:
    """Without --use-xheaders a client's X-Forwarded-Host proves nothing: Host is what is checked."""
    proc = serve(ks_serve_process, tmp_path, "--allow-host", "dash.example")
    port = proc.port

    async def main() -> None:
        url = f"http://127.0.0.1:{port}/a"
        evil = {"Host": f"evil.example:{port}", "X-Forwarded-Host": "dash.example"}
        assert (await fetch(url, headers=evil)).code == 403
        assert (await fetch(url, headers={"Host": "dash.example"})).code == 200

    run(main)


def test_a_unix_socket_server_takes_what_a_local_proxy_sends(tmp_path: Path) -> None:
    """--unix-socket: Host localhost / 127.0.0.1 / [::1] on any port (what a proxy in front sends) is
    answered, and an --allow-host name; any other name gets 403."""
    import kernelstate as ks

    path = str(tmp_path / "ks.sock")
    server = ks.serve(lambda: ks.pane.Str("unix"), threaded=True, unix_socket=path, allow_host="dash.example")

    def status(host: str) -> int:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(f"GET /liveness HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
        return int(head.split(b" ", 2)[1])

    try:
        for host in ("localhost", "localhost:8888", "127.0.0.1:0", "[::1]:80", "dash.example"):
            assert status(host) == 200, host
        for host in ("evil.example", "evil.example:8888", "dash.example:8888", "localhost.evil.example"):
            assert status(host) == 403, host
    finally:
        server.stop()


def test_dns_rebinding_in_chromium_gets_no_page_no_token_no_websocket(ks_serve_process: Any, tmp_path: Path,
                                                                      figures: Any) -> None:
    """Chromium resolves evil.example to 127.0.0.1 and loads http://evil.example:PORT/a: a 403 page without a
    token; the page's own scripts (same-origin to the browser) read nothing and open no WebSocket, even
    with a valid token smuggled in."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} missing): the rebinding test needs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    proc = serve(ks_serve_process, tmp_path)
    port = proc.port
    target = f"http://evil.example:{port}"
    token = run(lambda: page_token(port))   # a real token, as if leaked: it still must not help
    before = sessions(port)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
        try:
            page = browser.new_page()
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            response = page.goto(target + "/a")
            assert response is not None and response.status == 403
            html = page.content()
            assert "Host not allowed" in html and "rebinding target" not in html and "bokeh" not in html
            # The attacker's script, same-origin to the browser, tries what a rebinding page would.
            result = page.evaluate("""async ([token]) => {
                const read = async (path) => { const r = await fetch(path); return [r.status, await r.text()]; };
                const [pageStatus, pageText] = await read('/a');
                const [liveStatus] = await read('/liveness');
                const ws = await new Promise((resolve) => {
                    const sock = new WebSocket(location.origin.replace('http', 'ws') + '/a/ws', ['bokeh', token]);
                    sock.onopen = () => { sock.close(); resolve('open'); };
                    sock.onerror = () => resolve('error');
                    setTimeout(() => resolve('timeout'), 10000);
                });
                return {pageStatus, leaked: pageText.includes('bokeh') || pageText.includes('rebinding target'),
                        liveStatus, ws};
            }""", [token])
        finally:
            browser.close()
    assert result == {"pageStatus": 403, "leaked": False, "liveStatus": 403, "ws": "error"}, result
    assert sessions(port) == before
    assert sockets == [f"ws://evil.example:{port}/a/ws"]   # the one attempt the script made, refused
    figures("DNS rebinding in Chromium (evil.example -> 127.0.0.1)",
            f"page {response.status}, fetch /a {result['pageStatus']}, /liveness {result['liveStatus']}, "
            f"WebSocket {result['ws']}, sessions created {sessions(port) - before}")
