"""R9: every endpoint the extension registers x {no credentials, wrong token, denied, allowed}.

The matrix is built from the routes the extension actually registers, so an
endpoint added later without a row here fails the test instead of slipping
through. Run with ``allow_unauthenticated_access`` True and False; non-GET
calls authenticated by cookie need Jupyter's XSRF token; no kernelstate
handler method lacks an auth decorator (what ``JupyterServerAuthWarning``
reports at startup).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketHandler, websocket_connect

from kernelstate.testing import ProtocolClient
from kernelstate.testing.jupyter import login_cookie, server_config

APP = "import kernelstate as ks\nks.pane.Markdown('matrix app').servable()\n"
FAKE_KERNEL = "00000000-0000-0000-0000-000000000000"
# One concrete URL per registered route pattern (relative to the base URL).
SAMPLES = {
    "kernelstate/?": "kernelstate/",
    "kernelstate/apps/?": "kernelstate/apps/",
    "kernelstate/apps/(.+)/ws": "kernelstate/apps/app.py/ws",
    "kernelstate/apps/(.+)": "kernelstate/apps/app.py",
    "kernelstate/kernels/([^/]+)/docs/([^/]+)/([^/]+)/ws": f"kernelstate/kernels/{FAKE_KERNEL}/docs/d.s/v1/ws",
    "kernelstate/static/(.*)": "kernelstate/static/js/bokeh.min.js",
    "kernelstate/ks-static/(.*)": "kernelstate/ks-static/js/kernelstate.js",
    "kernelstate/api/ping": "kernelstate/api/ping",
    "kernelstate/api/sessions": "kernelstate/api/sessions",
    "kernelstate/api/sessions/([^/]+)": "kernelstate/api/sessions/x",
}
# Package assets: any signed-in user may fetch them (no authorizer check).
ASSETS = {"kernelstate/static/(.*)", "kernelstate/ks-static/(.*)"}


class DenyEverything(Authorizer):
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return False


def routes(ks_ext: Any) -> list[tuple[str, type[web.RequestHandler]]]:
    found = []
    for rule in ks_ext.handlers:
        pattern, handler = rule[0], rule[1]
        found.append((re.sub(r"^/", "", pattern), handler))
    return found


def methods(handler: type[web.RequestHandler]) -> list[str]:
    if issubclass(handler, WebSocketHandler):
        return ["WS"]
    return [m for m in handler.SUPPORTED_METHODS
            if m != "OPTIONS" and getattr(handler, m.lower()) is not web.RequestHandler._unimplemented_method]


class Client:
    def __init__(self, serverapp: Any, port: int) -> None:
        self.base = f"http://localhost:{port}{serverapp.base_url}"
        self.ws_base = f"ws://localhost:{port}{serverapp.base_url}"
        self.host = f"localhost:{port}"
        self.token = serverapp.identity_provider.token

    async def status(self, path: str, method: str, headers: dict[str, str], token: str = "x.y") -> int:
        if method == "WS":
            request = HTTPRequest(self.ws_base + path, headers=headers, request_timeout=60)
            try:
                ws = await websocket_connect(request, subprotocols=["bokeh", token])
            except HTTPClientError as exc:
                return exc.code
            ws.close()
            return 101
        request = HTTPRequest(self.base + path, method=method, headers=headers, follow_redirects=False,
                              body=b"" if method in ("POST", "PUT", "PATCH") else None,
                              allow_nonstandard_methods=True, request_timeout=60)
        try:
            return (await AsyncHTTPClient().fetch(request)).code
        except HTTPClientError as exc:
            return exc.code

    async def login_cookie(self) -> str:
        """The login cookie Jupyter sets for a token-authenticated request."""
        return await login_cookie(self.base, self.token)


@pytest.fixture
def client(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_root_dir: Path, ks_ext: Any) -> Client:
    (jp_root_dir / "app.py").write_text(APP)
    return Client(jp_serverapp, jp_http_port)


def test_no_handler_method_lacks_an_auth_decorator(jp_serverapp: Any, ks_ext: Any) -> None:
    """What JupyterServerAuthWarning would name at startup: no kernelstate handler method is undecorated."""
    missing = []
    for pattern, handler in routes(ks_ext):
        missing += jp_serverapp.web_app._check_handler_auth(pattern, handler)
    assert missing == []


@pytest.mark.parametrize("jp_server_config", [server_config(), server_config({"allow_unauthenticated_access": False})],
                         ids=["allow_unauthenticated_access", "no_unauthenticated_access"])
async def test_every_route_refuses_missing_or_wrong_credentials(client: Client, ks_ext: Any, figures: Any) -> None:
    """No credentials, or a wrong token: 403 (a page GET may redirect to login); the right token gets through."""
    table = routes(ks_ext)
    assert {p for p, _ in table} == set(SAMPLES), "a route without a row in the auth matrix"
    cells = 0
    for pattern, handler in table:
        path = SAMPLES[pattern]
        for method in methods(handler):
            for creds in ({}, {"Authorization": "token not-the-token"}):
                status = await client.status(path, method, creds)
                page = method in ("GET", "HEAD") and not pattern.startswith("kernelstate/api")
                assert status in ((302, 403) if page else (403,)), (pattern, method, creds, status)
                cells += 1
            allowed = await client.status(path, method, {"Authorization": f"token {client.token}"})
            assert allowed not in (302, 401), (pattern, method, allowed)
            if method in ("GET", "HEAD") and pattern != "kernelstate/apps/(.+)":
                assert allowed == 200, (pattern, method, allowed)
            cells += 1
    # An allowed WebSocket with a real page token is upgraded.
    tab = ProtocolClient(client.base + SAMPLES["kernelstate/apps/(.+)"],
                         headers={"Authorization": f"token {client.token}"}, timeout=60)
    async with tab:
        assert "matrix app" in tab.text()
    figures("extension auth matrix cells checked", cells)


@pytest.mark.parametrize("jp_server_config", [server_config({"authorizer_class": DenyEverything})], ids=["deny"])
async def test_authenticated_but_denied_gets_403_everywhere(client: Client, ks_ext: Any) -> None:
    """A signed-in user the authorizer denies: 403 on every route but the package assets."""
    auth = {"Authorization": f"token {client.token}"}
    for pattern, handler in routes(ks_ext):
        for method in methods(handler):
            status = await client.status(SAMPLES[pattern], method, auth)
            expected = (200,) if pattern in ASSETS else (403,)
            assert status in expected, (pattern, method, status)


async def test_cookie_auth_needs_xsrf_for_writes_and_same_origin_for_sockets(client: Client, ks_ext: Any) -> None:
    """With Jupyter's login cookie: every non-GET without _xsrf is 403; WebSockets from another origin are 403."""
    cookie = await client.login_cookie()
    for pattern, handler in routes(ks_ext):
        for method in methods(handler):
            path = SAMPLES[pattern]
            if method == "WS":
                assert await client.status(path, "WS", {"Cookie": cookie, "Origin": "http://evil.example"}) == 403
                for origin in (f"http://{client.host}.evil.example", f"http://{client.host}x", "null"):
                    assert await client.status(path, "WS", {"Cookie": cookie, "Origin": origin}) == 403, origin
            elif method not in ("GET", "HEAD"):
                assert await client.status(path, method, {"Cookie": cookie}) == 403, (pattern, method)
                spoofed = {"Cookie": cookie, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "same-origin"}
                assert await client.status(path, method, spoofed) == 403, (pattern, method, "fetch metadata")
                with_xsrf = {"Cookie": f"{cookie}; _xsrf=abc123", "X-XSRFToken": "abc123"}
                assert await client.status(path, method, with_xsrf) != 403, (pattern, method)
