"""Password login on a real ``kernelstate serve --basic-auth FILE`` process.

Every route is tried with no cookie, after a wrong password, with an expired
cookie, a forged cookie and the right user; the login form's XSRF; WebSockets
with a valid page token but no or another user's cookie; logout revoking every
copy of the cookie; the user in the app (``ks.state.user``/``user_info``).
One server for the module.
"""
from __future__ import annotations

import asyncio
import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import (
    PASSWORDS,
    SECRET_KEY,
    aged_cookie,
    forged_cookie,
    login,
    login_cookie,
    login_id_of,
    password_file,
    try_login,
    xsrf_of,
)
from tornado.httpclient import HTTPClientError

from kernelstate.auth.logins import COOKIE_NAME
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

WHO_APP = '''
import kernelstate as ks
info = dict(ks.state.user_info)
ks.Column(f"# Hello {ks.state.user}", ks.pane.Str(f"claims={sorted(info.items())} token={ks.state.access_token} "
          f"cookies={sorted(ks.state.cookies)}")).servable(title="Who")
'''
OTHER_APP = 'import kernelstate as ks\nks.pane.Str("the other app").servable(title="Other")\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("basic")
    (root / "who.py").write_text(WHO_APP)
    (root / "other.py").write_text(OTHER_APP)
    files = root / "files"
    files.mkdir()
    (files / "data.txt").write_text("private data")
    proc = start_serve_process(str(root / "who.py"), str(root / "other.py"), "--basic-auth", str(password_file(root)),
                               "--static-dirs", f"files={files}", "--auth-cookie-expiry", "3600",
                               env={"KERNELSTATE_SECRET_KEY": SECRET_KEY})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def alice(server: ServeProcess) -> Iterator[httpx.Client]:
    client = login(base(server), "alice", PASSWORDS["alice"])
    yield client
    client.close()


def base(server: ServeProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


GATED = ["/", "/who", "/other", "/files/data.txt", "/static/js/bokeh.min.js", "/no-such-page"]
OPEN = ["/liveness", "/ks-static/css/kernelstate.css", "/login"]


def get(server: ServeProcess, path: str, cookie: str | None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
    return httpx.get(base(server) + path, headers=headers, follow_redirects=False, timeout=30)


def assert_sent_to_login(response: httpx.Response, path: str) -> None:
    assert response.status_code == 302, (path, response.status_code)
    assert response.headers["Location"].startswith("/login?next="), response.headers["Location"]
    assert "private data" not in response.text


@pytest.mark.parametrize("path", GATED)
def test_every_route_needs_the_right_login(server: ServeProcess, alice: httpx.Client, path: str) -> None:
    assert_sent_to_login(get(server, path, None), path)
    # After a wrong password: no login cookie. (From an address and user name of its own, so the
    # failure throttle these failures feed does not slow the other tests' logins.)
    address = f"127.0.0.{10 + GATED.index(path)}"
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30,
                      transport=httpx.HTTPTransport(local_address=address)) as stranger:
        wrong = try_login(stranger, f"mallory{GATED.index(path)}", "not a password")
        assert wrong.status_code == 401 and COOKIE_NAME not in stranger.cookies
        assert_sent_to_login(stranger.get(path, follow_redirects=False), path)
    login_id = login_id_of(login_cookie(alice))
    assert_sent_to_login(get(server, path, aged_cookie(login_id, 2 * 3600)), path)   # older than the expiry
    assert_sent_to_login(get(server, path, forged_cookie(login_id)), path)
    assert_sent_to_login(get(server, path, "2|1:0|10:1|17:kernelstate-login|4:YWJj|" + "0" * 64), path)
    right = alice.get(path, follow_redirects=False)
    assert right.status_code == (404 if path == "/no-such-page" else 200), right.status_code


def test_open_routes_answer_without_login(server: ServeProcess) -> None:
    for path in OPEN:
        assert get(server, path, None).status_code == 200, path
    assert "alice" not in get(server, "/liveness", None).text


def test_login_cookie_is_httponly_lax_and_not_secure_over_http(server: ServeProcess) -> None:
    with httpx.Client(base_url=base(server), timeout=30) as client:
        page = client.get("/login")
        response = client.post("/login", data={"_xsrf": xsrf_of(page.text), "username": "bob",
                                               "password": PASSWORDS["bob"], "next": "/who"})
    cookie = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE_NAME)][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie and "expires=" in cookie
    assert response.headers["Location"] == "/who"


def test_login_form_refuses_a_post_without_xsrf(server: ServeProcess) -> None:
    with httpx.Client(base_url=base(server), timeout=30) as client:
        client.get("/login")   # has the _xsrf cookie, but the form field is missing
        response = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
        assert response.status_code == 403 and COOKIE_NAME not in client.cookies
        response = client.post("/login", data={"_xsrf": "2|00|11|0", "username": "alice",
                                               "password": PASSWORDS["alice"]})
        assert response.status_code == 403 and COOKIE_NAME not in client.cookies


@pytest.mark.parametrize("next_url", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:1"])
def test_login_redirects_only_to_this_site(server: ServeProcess, next_url: str) -> None:
    with httpx.Client(base_url=base(server), timeout=30) as client:
        response = try_login(client, "alice", PASSWORDS["alice"], next_url)
    assert response.status_code == 302 and response.headers["Location"] == "/"


async def _page(server: ServeProcess, cookie: str, path: str = "/who") -> ProtocolClient:
    tab = ProtocolClient(base(server) + path, headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    await tab.fetch_page()
    return tab


def test_the_app_sees_the_user_and_never_the_login_cookie(server: ServeProcess, alice: httpx.Client) -> None:
    async def main() -> str:
        async with ProtocolClient(base(server) + "/who", headers={"Cookie": f"{COOKIE_NAME}={login_cookie(alice)}"}) as tab:
            await tab.wait_for(lambda: "Hello alice" in tab.text())
            return tab.text()

    text = html.unescape(asyncio.run(main()))
    assert "('name', 'alice')" in text and "token=None" in text
    assert COOKIE_NAME not in text and "_xsrf" not in text


def test_websocket_needs_the_cookie_of_the_user_the_token_was_issued_to(server: ServeProcess,
                                                                        alice: httpx.Client) -> None:
    bob = login(base(server), "bob", PASSWORDS["bob"])

    async def main() -> None:
        tab = await _page(server, login_cookie(alice))
        for headers, code in (({}, 401), ({"Cookie": f"{COOKIE_NAME}={login_cookie(bob)}"}, 403)):
            thief = ProtocolClient(tab.url, headers=headers)
            thief.token = tab.token
            with pytest.raises(HTTPClientError) as refused:
                await thief.connect()
            assert refused.value.code == code
        await tab.connect()   # the owner's own cookie still works
        await tab.wait_for(lambda: "Hello alice" in tab.text())
        await tab.close()

    asyncio.run(main())
    bob.close()
    assert "not signed in" in server.log_text() and "token issued to another user" in server.log_text()


def test_logout_ends_every_copy_of_the_login(server: ServeProcess) -> None:
    client = login(base(server), "bob", PASSWORDS["bob"])
    copied = login_cookie(client)
    assert get(server, "/who", copied).status_code == 200
    form = client.get("/logout")
    assert form.status_code == 200 and "signed in as bob" in form.text
    out = client.post("/logout", data={"_xsrf": xsrf_of(form.text)})
    assert out.status_code == 302 and out.headers["Location"].startswith("/login")
    assert_sent_to_login(get(server, "/who", copied), "/who")
    assert client.post("/logout", data={}).status_code == 403   # logout is XSRF-protected too
    client.close()


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(OTHER_APP)
    path = password_file(tmp_path, mode=0o640)
    with pytest.raises(RuntimeError) as failed:
        start_serve_process(str(tmp_path / "app.py"), "--basic-auth", str(path))
    assert "open to other users" in str(failed.value) and "chmod 600" in str(failed.value)
