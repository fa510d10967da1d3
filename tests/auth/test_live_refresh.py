"""An open session keeps a fresh access token: a real OpenID provider (oidc-provider-mock) issuing
short-lived tokens, a real ``kernelstate serve``, and a session (ProtocolClient) that never reloads:

- the session's ``ks.state.access_token`` changes to a NEW token the provider honours, while the
  WebSocket stays open (a timer refreshes the login before the token expires);
- once the provider refuses the refresh token (the user's tokens revoked at the provider), the
  session's WebSocket closes with ``CloseCode.SIGNED_OUT`` (4411);
- a logout closes a session's WebSocket opened by a reconnect;
- the same in Chromium: the page shows a new token without reloading, then the banner that says to
  sign in again.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from oauth_support import APPS, CLIENT_ID, Provider, oidc_provider, run_async, serve, start_login

from kernelstate.endpoint import CloseCode
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess

pytestmark = [pytest.mark.timeout(120)]
ALICE = {"sub": "alice", "preferred_username": "alice"}
BOB = {"sub": "bob", "preferred_username": "bob"}
CAROL = {"sub": "carol", "preferred_username": "carol"}
DAVE = {"sub": "dave", "preferred_username": "dave"}
CHROMIUM = "/usr/bin/chromium"
# Access tokens live 4 s: an open session refreshes its login at half that (see session_login.refresh_delay).
TOKEN_MAX_AGE_S = 4
WAIT_S = 20.0   # generous: a refresh is due within about 2 s


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("op") / "op.log", ALICE, BOB, CAROL, DAVE,
                       token_max_age=TOKEN_MAX_AGE_S) as op:
        yield op


@pytest.fixture(scope="module")
def server(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    deny_file = tmp_path_factory.mktemp("authz") / "deny"
    deny_file.write_text("")
    process = serve(str(APPS / "live_token.py"), "--oauth-provider", "generic", "--oauth-issuer", provider.url,
                    "--oauth-client-id", CLIENT_ID, deny_file=deny_file)
    yield process
    process.stop()


def login_cookie(server: ServeProcess, sub: str) -> dict[str, str]:
    callback = start_login(server.url, "/live_token", sub)
    assert callback.client.get(callback.url).status_code == 302
    return {"Cookie": f"kernelstate-login={callback.client.cookies['kernelstate-login']}"}


def shown_token(tab: ProtocolClient) -> str:
    found = re.search(r"^token (\S+)$", tab.visible_text(), re.MULTILINE)
    assert found, tab.visible_text()
    return found.group(1)


def test_an_open_session_gets_a_new_access_token(server: ServeProcess, provider: Provider) -> None:
    cookie = login_cookie(server, "alice")

    async def flow() -> tuple[str, str, str, dict[str, str]]:
        async with ProtocolClient(server.url + "live_token", headers=cookie) as tab:
            assert "signed in as alice" in tab.text()
            first = shown_token(tab)
            await tab.wait_for(lambda: shown_token(tab) != first, timeout=WAIT_S)
            second = shown_token(tab)
            await tab.wait_for(lambda: "refreshed 0" not in tab.text(), timeout=WAIT_S)
            # The token the session shows is one the provider honours, for the same user. (Each refresh
            # revokes the previous token, every 2 s or so: ask again if a refresh came in between.)
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(5):
                    answer = await http.get(provider.url + "/userinfo",
                                            headers={"Authorization": f"Bearer {shown_token(tab)}"})
                    if answer.status_code == 200:
                        break
                    await asyncio.sleep(0.3)
            assert tab.close_code is None, "the WebSocket stayed open"
            return first, second, tab.text(), answer.json()

    first, second, text, userinfo = run_async(flow())
    assert second != first and second != "None"
    assert re.search(r"refreshed \d+ same=True", text), text
    assert userinfo.get("sub") == "alice", userinfo


def test_a_refused_refresh_closes_the_session_signed_out(server: ServeProcess, provider: Provider) -> None:
    cookie = login_cookie(server, "bob")

    async def flow() -> tuple[int | None, str | None]:
        async with ProtocolClient(server.url + "live_token", headers=cookie) as tab:
            assert "signed in as bob" in tab.text()
            httpx.post(provider.url + "/users/bob/revoke-tokens", timeout=10).raise_for_status()
            return await tab.wait_closed(timeout=WAIT_S)

    started = time.monotonic()
    code, reason = run_async(flow())
    assert code == CloseCode.SIGNED_OUT == 4411 and "sign in again" in (reason or ""), (code, reason)
    print(f"\nrefused refresh -> WebSocket closed 4411 after {time.monotonic() - started:.1f} s")
    assert "its login ended (the access token could not be refreshed)" in server.log_text()
    # The login is over: the next page goes to the provider's login.
    again = httpx.get(server.url + "live_token", headers=cookie, timeout=30)
    assert again.status_code == 302 and "/oauth_login?" in again.headers["location"]


def test_logout_closes_the_websocket_of_a_reconnect(server: ServeProcess) -> None:
    """Logout closes (4411) a session's WebSocket opened by a reconnect, not only its first one."""
    callback = start_login(server.url, "/live_token", "carol")
    browser = callback.client
    assert browser.get(callback.url).status_code == 302
    cookie = {"Cookie": f"kernelstate-login={browser.cookies['kernelstate-login']}"}

    async def flow() -> tuple[int | None, str | None]:
        tab = ProtocolClient(server.url + "live_token", headers=cookie)
        await tab.open()
        assert "signed in as carol" in tab.text()
        await tab.close()
        await tab.connect()     # the reconnect of the same page, to the same session
        form = browser.get(server.url + "logout")
        assert form.status_code == 200
        out = browser.post(server.url + "logout", data={"_xsrf": browser.cookies["_xsrf"]})
        assert out.status_code == 302, out.text
        return await tab.wait_closed(timeout=WAIT_S)

    code, reason = run_async(flow())
    assert code == CloseCode.SIGNED_OUT, (code, reason)


@pytest.mark.browser
def test_in_chromium_the_page_gets_new_tokens_then_says_to_sign_in_again(server: ServeProcess,
                                                                          provider: Provider) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        try:
            context = chromium.new_context()
            # 127.0.0.1 only (the provider's login page asks a CDN for its stylesheet)
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                          else route.abort())
            page = context.new_page()
            page.goto(server.url + "live_token")
            page.wait_for_url(provider.url + "/oauth2/authorize?**")
            page.get_by_role("button", name="Authorize as dave").click()
            page.wait_for_selector("text=signed in as dave", timeout=20000)
            page.evaluate("window.ksSamePage = true")   # gone if the page reloads
            first = token_in(page)
            deadline = time.monotonic() + WAIT_S
            while token_in(page) == first and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert token_in(page) != first and page.evaluate("window.ksSamePage === true")
            httpx.post(provider.url + "/users/dave/revoke-tokens", timeout=10).raise_for_status()
            banner = page.wait_for_selector("#ks-banner", timeout=WAIT_S * 1000)
            assert banner is not None and "sign in again" in banner.inner_text()
            context.close()
        finally:
            chromium.close()


def token_in(page: Any) -> str:
    """The token the page shows (Bokeh renders into shadow roots, which Playwright's locators pierce)."""
    return str(page.locator("text=/^token /").first.inner_text()).removeprefix("token ").strip()
