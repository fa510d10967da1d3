"""Per-user pages and authorization on a real server with ``--reuse-sessions`` and ``--authorize``.

The reuse cache keys pages by the signed-in user: alice's cached page is
served to alice again and never to bob. The ``--authorize`` function runs
before a page, a WebSocket and a reconnect; a refused user gets a 403 page
saying who they are signed in as and how to sign out.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import PASSWORDS, login, login_cookie, password_file
from tornado.httpclient import HTTPClientError

from kernelstate.auth.logins import COOKIE_NAME
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

HELLO = '''
import kernelstate as ks
ks.pane.Markdown(f"Hello {ks.state.user} ({ks.state.user_info['name']})").servable(title=f"Hi {ks.state.user}")
'''
SECRET = 'import kernelstate as ks\nks.pane.Str("the secret").servable(title="Secret")\n'
AUTHORIZE = '''
import os
from pathlib import Path

def allow(user_info, path):
    denied = Path(os.environ["AUTHZ_DENIED"]).read_text().split()
    if user_info["name"] in denied:
        return False
    if path.startswith("/secret"):
        return user_info["name"] == "alice"
    return True
'''


@pytest.fixture(scope="module")
def denied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("authz") / "denied"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, denied: Path) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("users")
    (root / "hello.py").write_text(HELLO)
    (root / "secret.py").write_text(SECRET)
    (root / "authz.py").write_text(AUTHORIZE)
    proc = start_serve_process(str(root / "hello.py"), str(root / "secret.py"), "--reuse-sessions",
                               "--basic-auth", str(password_file(root)), "--authorize", f"{root / 'authz.py'}:allow",
                               env={"AUTHZ_DENIED": str(denied)})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def clients(server: ServeProcess) -> Iterator[dict[str, httpx.Client]]:
    signed_in = {name: login(f"http://127.0.0.1:{server.port}", name, pw) for name, pw in PASSWORDS.items()}
    yield signed_in
    for client in signed_in.values():
        client.close()


def title(html: str) -> str:
    m = re.search(r"<title>(.*?)</title>", html)
    assert m is not None
    return m.group(1)


def counts(server: ServeProcess) -> tuple[int, int]:
    live = httpx.get(f"http://127.0.0.1:{server.port}/liveness", timeout=30).json()
    return live["sessions"], live["pending"]


def test_reuse_cache_never_serves_one_users_page_to_another(server: ServeProcess,
                                                             clients: dict[str, httpx.Client]) -> None:
    alice, bob = clients["alice"], clients["bob"]
    assert title(alice.get("/hello").text) == "Hi alice"          # rendered, then cached for alice
    sessions, pending = counts(server)
    assert title(alice.get("/hello").text) == "Hi alice"          # alice's cached page
    assert counts(server) == (sessions, pending + 1)              # a cache hit: a pending session, no render
    assert title(bob.get("/hello").text) == "Hi bob"              # never alice's page
    assert counts(server)[0] == sessions + 1                      # bob's page was rendered for bob

    async def main() -> None:
        for name in ("bob", "alice", "bob"):
            tab = ProtocolClient(f"http://127.0.0.1:{server.port}/hello",
                                 headers={"Cookie": f"{COOKIE_NAME}={login_cookie(clients[name])}"})
            async with tab:
                await tab.wait_for(lambda tab=tab, name=name: f"Hello {name} ({name})" in tab.text())

    asyncio.run(main())


def test_authorize_refusal_is_a_403_page_saying_who_and_how_to_sign_out(clients: dict[str, httpx.Client]) -> None:
    refused = clients["bob"].get("/secret")
    assert refused.status_code == 403
    assert "signed in as bob" in refused.text and 'href="/logout"' in refused.text and "Sign out" in refused.text
    assert "the secret" not in refused.text
    assert clients["alice"].get("/secret").status_code == 200


def test_authorize_runs_before_websockets_and_reconnects(server: ServeProcess, clients: dict[str, httpx.Client],
                                                        denied: Path) -> None:
    headers = {"Cookie": f"{COOKIE_NAME}={login_cookie(clients['bob'])}"}

    async def main() -> None:
        async with ProtocolClient(f"http://127.0.0.1:{server.port}/hello", headers=headers) as tab:
            await tab.wait_for(lambda: "Hello bob" in tab.text())
            token, url = tab.token, tab.url
        secret = ProtocolClient(f"http://127.0.0.1:{server.port}/secret", headers=headers)
        secret.token = token
        with pytest.raises(HTTPClientError) as refused:   # another app's WebSocket: authorized by its path
            await secret.connect()
        assert refused.value.code == 403
        denied.write_text("bob\n")
        again = ProtocolClient(url, headers=headers)
        again.token = token
        with pytest.raises(HTTPClientError) as refused:   # the reconnect of the same page
            await again.connect()
        assert refused.value.code == 403

    try:
        asyncio.run(main())
    finally:
        denied.write_text("")
    assert "the authorize callback refused user 'bob'" in server.log_text()
