"""Every extension endpoint is behind Jupyter's auth, origin and XSRF checks; app paths stay in the root."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_helpers import server_config
from jupyter_server.auth import Authorizer, IdentityProvider, User
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.jupyter import login_cookie

APP = "import kernelstate as ks\nks.pane.Markdown('secure app').servable()\n"
HTTP_ENDPOINTS = ["kernelstate/", "kernelstate/apps/", "kernelstate/apps/app.py", "kernelstate/static/js/bokeh.min.js",
                  "kernelstate/ks-static/js/kernelstate.js", "kernelstate/api/ping", "kernelstate/api/sessions"]
FAKE_KERNEL = "00000000-0000-0000-0000-000000000000"
WS_ENDPOINTS = ["kernelstate/apps/app.py/ws", f"kernelstate/kernels/{FAKE_KERNEL}/docs/d.s/v1/ws"]


class DenyEverything(Authorizer):
    """Knows who you are, lets you do nothing."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return False


class Server:
    def __init__(self, serverapp: Any, port: int, root: Path) -> None:
        self.base = f"http://localhost:{port}{serverapp.base_url}"
        self.ws_base = f"ws://localhost:{port}{serverapp.base_url}"
        self.token = serverapp.identity_provider.token
        self.root = root
        (root / "app.py").write_text(APP)

    async def status(self, path: str, method: str = "GET", **headers: str) -> int:
        body = b"" if method in ("POST", "PUT", "PATCH") else None
        request = HTTPRequest(self.base + path, method=method, headers=headers, body=body, follow_redirects=False,
                              allow_nonstandard_methods=True, request_timeout=30)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            return exc.code
        return response.code

    async def ws_status(self, path: str, subprotocols: list[str] | None = None, **headers: str) -> int:
        """101 if the upgrade was accepted (then closed), else the HTTP status of the refusal."""
        request = HTTPRequest(self.ws_base + path, headers=headers, request_timeout=30)
        try:
            ws = await websocket_connect(request, subprotocols=subprotocols or ["bokeh", "x.y"])
        except HTTPClientError as exc:
            return exc.code
        ws.close()
        return 101

    async def login_cookie(self) -> str:
        """The login cookie Jupyter sets for a token-authenticated request."""
        return await login_cookie(self.base, self.token)


@pytest.fixture
def server(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_root_dir: Path, ks_ext: Any) -> Server:
    """The running server (``http_server_client`` makes pytest-jupyter listen on its port)."""
    return Server(jp_serverapp, jp_http_port, jp_root_dir)


@pytest.mark.parametrize("jp_server_config", [server_config(), server_config({"allow_unauthenticated_access": False})],
                         ids=["default", "no-unauthenticated-access"])
async def test_unauthenticated_and_wrong_token_refused_everywhere(server: Server) -> None:
    """No credentials or a wrong token: pages redirect to login, APIs and WebSockets answer 403."""
    for creds in ({}, {"Authorization": "token not-the-token"}):
        for path in HTTP_ENDPOINTS:
            status = await server.status(path, **creds)
            assert status in (302, 403), (path, creds, status)
            if path.startswith("kernelstate/api"):
                assert status == 403, (path, status)
        assert await server.status("kernelstate/api/sessions/x", method="DELETE", **creds) == 403
        for path in WS_ENDPOINTS:
            assert await server.ws_status(path, **creds) == 403, (path, creds)
    # With the token, the same endpoints answer.
    auth = {"Authorization": f"token {server.token}"}
    for path in HTTP_ENDPOINTS:
        if path != "kernelstate/apps/app.py":
            assert await server.status(path, **auth) == 200, path


async def test_websockets_check_origin_and_tokens(server: Server, jp_auth_header: dict[str, str]) -> None:
    """A cookie-authenticated WebSocket from a foreign origin is refused before the upgrade; so are bad Bokeh tokens."""
    cookie = await server.login_cookie()
    host = server.base.split("/")[2]
    same, foreign = {"Cookie": cookie, "Origin": f"http://{host}"}, {"Cookie": cookie, "Origin": "http://evil.example"}
    for path in WS_ENDPOINTS:
        assert await server.ws_status(path, **foreign) == 403, path
    # Same origin passes auth and origin; then: the fake kernel is unknown, the app token is forged.
    assert await server.ws_status(WS_ENDPOINTS[1], **same) == 404
    assert await server.ws_status(WS_ENDPOINTS[0], **same) == 403
    assert await server.ws_status(WS_ENDPOINTS[0], subprotocols=["bokeh"], **same) == 403
    assert await server.ws_status(WS_ENDPOINTS[0], subprotocols=["chat"], **jp_auth_header) == 403
    # A real page's token works, with the cookie and the page's own origin.
    tab = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"Cookie": cookie}, origin=f"http://{host}",
                         timeout=60)
    async with tab:
        assert "secure app" in tab.text()
    # The same page token from a foreign origin is refused.
    evil = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"Cookie": cookie},
                          origin="http://evil.example", timeout=30)
    evil.token = tab.token
    with pytest.raises(HTTPClientError) as err:
        await evil.connect()
    assert err.value.code == 403


async def test_websockets_from_a_rebound_name_are_refused(server: Server) -> None:
    """DNS rebinding: Origin equal to Host (a foreign name) and Sec-Fetch-Site: same-origin do not pass;
    neither without Jupyter's login cookie (the rebinding page has none) nor with it."""
    cookie = await server.login_cookie()
    port = server.base.split("/")[2].rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}", "Sec-Fetch-Site": "same-origin"}
    for path in WS_ENDPOINTS:
        assert await server.ws_status(path, **rebound) == 403, path
        assert await server.ws_status(path, Cookie=cookie, **rebound) == 403, path
    tab = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"Cookie": cookie}, timeout=60)
    await tab.fetch_page()
    assert await server.ws_status(WS_ENDPOINTS[0], subprotocols=["bokeh", tab.token], Cookie=cookie, **rebound) == 403


async def test_api_cross_origin_and_xsrf(server: Server) -> None:
    """Cookie-authenticated API calls: foreign origin refused; DELETE needs Jupyter's XSRF token."""
    cookie = await server.login_cookie()
    assert await server.status("kernelstate/api/sessions", Cookie=cookie) == 200
    assert await server.status("kernelstate/api/sessions", Cookie=cookie, Origin="http://evil.example") == 404
    assert await server.status("kernelstate/api/sessions/nope", method="DELETE", Cookie=cookie) == 403
    xsrf = {"Cookie": f"{cookie}; _xsrf=abc123", "X-XSRFToken": "abc123"}
    assert await server.status("kernelstate/api/sessions/nope", method="DELETE", **xsrf) == 404


@pytest.fixture
def outside(tmp_path_factory: Any) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("outside")
    (path / "secret.py").write_text("import kernelstate as ks\nks.pane.Markdown('LEAKED').servable()\n")
    yield path


async def test_app_paths_confined_to_the_root(server: Server, outside: Path, jp_root_dir: Path) -> None:
    """``..``, absolute paths, hidden files, symlinks out, sibling prefixes, odd bytes: 403/404, never served."""
    sibling = Path(str(jp_root_dir) + "-secret")
    sibling.mkdir()
    (sibling / "app.py").write_text(APP)
    (jp_root_dir / "link.py").symlink_to(outside / "secret.py")
    (jp_root_dir / "linkdir").symlink_to(outside)
    (jp_root_dir / ".hidden").mkdir()
    (jp_root_dir / ".hidden" / "app.py").write_text(APP)
    (jp_root_dir / "data.txt").write_text("not an app")
    rel_outside = os.path.relpath(outside / "secret.py", jp_root_dir)
    auth = {"Authorization": f"token {server.token}"}
    bad = ["..%2Fsecret.py", "%2e%2e/%2e%2e/etc/passwd.py", "apps/..%2F..%2Fsecret.py", f"{rel_outside}",
           f"%2F{str(outside / 'secret.py').lstrip('/')}", "/" + str(outside / "secret.py"), "link.py",
           "linkdir/secret.py", ".hidden/app.py", f"..%2F{sibling.name}%2Fapp.py", "data.txt", "app.py%00.py",
           "app%5C..%5Capp.py", "missing.py", "app.py%22%27.py"]
    for path in bad:
        status = await server.status("kernelstate/apps/" + path, **auth)
        assert status in (403, 404), (path, status)
    for path in ["..%2F..%2Fsecret", "js%2F..%2F..%2F..%2Fserver%2Ftokens.py"]:
        assert await server.status("kernelstate/static/" + path, **auth) in (403, 404), path
    assert await server.status("kernelstate/apps/app.py", **auth) == 200


@pytest.mark.parametrize("jp_server_config", [server_config({"authorizer_class": DenyEverything})], ids=["deny"])
async def test_authenticated_but_not_authorized(server: Server) -> None:
    """A known user the authorizer denies gets 403 from every endpoint that does anything."""
    auth = {"Authorization": f"token {server.token}"}
    for path in ["kernelstate/", "kernelstate/apps/app.py", "kernelstate/api/ping", "kernelstate/api/sessions"]:
        assert await server.status(path, **auth) == 403, path
    assert await server.status("kernelstate/api/sessions/x", method="DELETE", **auth) == 403
    for path in WS_ENDPOINTS:
        assert await server.ws_status(path, **auth) == 403, path


class HeaderIdentity(IdentityProvider):
    """Users named by an ``X-Test-User`` header (a stand-in for a multi-user identity provider)."""

    def get_user(self, handler: Any) -> User | None:
        name = handler.request.headers.get("X-Test-User")
        return User(name) if name else None


@pytest.mark.parametrize("jp_server_config", [server_config({"identity_provider_class": HeaderIdentity})],
                         ids=["users"])
async def test_an_app_session_belongs_to_the_user_who_opened_it(server: Server) -> None:
    """Another signed-in user with the page's token cannot open the session's WebSocket (403 before the upgrade)."""
    alice = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"X-Test-User": "alice"}, timeout=60)
    await alice.fetch_page()
    bob = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"X-Test-User": "bob"}, timeout=30)
    bob.token = alice.token
    with pytest.raises(HTTPClientError) as err:
        await bob.connect()
    assert err.value.code == 403
    async with alice:
        assert "secure app" in alice.text()
