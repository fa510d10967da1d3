"""``--oauth-provider generic`` against a real OpenID Connect provider (oidc-provider-mock, behind the
recording, PKCE-enforcing launcher oidc_mock.py) and a real ``kernelstate serve``: the code flow in
Chromium, the refusals (tampered state, replayed code, wrong issuer), PKCE on the wire, refresh of an
expired access token, the authorize callback on reconnect, and logout through the provider."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from oauth_support import APPS, CLIENT_ID, Provider, oidc_provider, run_async, s256, serve, start_login

from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
CHROMIUM = "/usr/bin/chromium"
ALICE = {"sub": "alice", "preferred_username": "alice", "email": "alice@example.org"}
BOB = {"sub": "bob", "preferred_username": "bob", "email": "bob@example.org"}
# Access tokens live 31 s: with the login's 30 s leeway they count as expired one second after
# they are issued, so a session sees its token expire and be refreshed within the test.
TOKEN_MAX_AGE_S = 31


@pytest.fixture(scope="module")
def deny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("authz") / "deny"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("op") / "op.log", ALICE, BOB, token_max_age=TOKEN_MAX_AGE_S) as op:
        yield op


@pytest.fixture(scope="module")
def server(provider: Provider, deny_file: Path) -> Iterator[ServeProcess]:
    process = serve(str(APPS / "whoami.py"), "--oauth-provider", "generic", "--oauth-issuer", provider.url,
                    "--oauth-client-id", CLIENT_ID, deny_file=deny_file)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        yield chromium
        chromium.close()


def new_context(browser: Any, outside: list[str]) -> Any:
    """A browser context that reaches 127.0.0.1 only (the provider's login page asks a CDN for its CSS)."""
    context = browser.new_context()

    def route(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return context


def chromium_login(page: Any, server: ServeProcess, provider: Provider, sub: str) -> None:
    page.goto(server.url + "whoami")
    page.wait_for_url(provider.url + "/oauth2/authorize?**")
    page.get_by_role("button", name=f"Authorize as {sub}").click()
    page.wait_for_selector(f"text=signed in as {sub}", timeout=20000)


def shown_token(page: Any) -> str:
    text = page.locator("text=/^token /").first.inner_text()
    return text.removeprefix("token ").strip()


@dataclass
class SignedIn:
    page: Any
    context: Any
    outside: list[str]      # requests the browser tried outside 127.0.0.1 (refused)
    flow_s: float


@pytest.fixture(scope="module")
def alice(browser: Any, server: ServeProcess, provider: Provider) -> Iterator[SignedIn]:
    """Alice, signed in through the provider in Chromium (the module's one browser login)."""
    outside: list[str] = []
    context = new_context(browser, outside)
    page = context.new_page()
    started = time.monotonic()
    page.goto(server.url + "whoami")
    page.wait_for_url(provider.url + "/oauth2/authorize?**")
    at_provider = time.monotonic()
    page.get_by_role("button", name="Authorize as alice").click()
    page.wait_for_url(server.url + "whoami")
    back = time.monotonic()
    page.wait_for_selector("text=signed in as alice", timeout=20000)
    flow_s = time.monotonic() - started
    print(f"\nOIDC code flow in Chromium: {flow_s:.2f} s in all (visit -> provider's form {at_provider - started:.2f} s, "
          f"authorize -> callback -> back at the app {back - at_provider:.2f} s, app rendered {time.monotonic() - back:.2f} s)")
    callback_ms = re.findall(r"generic: alice logged in \(code exchange and checks: (\d+) ms\)", server.log_text())
    print(f"the callback's code exchange, ID token and userinfo checks: {callback_ms[-1] if callback_ms else '?'} ms")
    yield SignedIn(page, context, outside, flow_s)
    context.close()


def test_code_flow_in_chromium(alice: SignedIn, server: ServeProcess) -> None:
    """An unauthenticated visit goes to the provider; after its login the app shows the user, a claim and the token."""
    assert alice.page.url == server.url + "whoami"
    alice.page.wait_for_selector("text=email alice@example.org")
    assert len(shown_token(alice.page)) > 20
    cookie = next(c for c in alice.context.cookies() if c["name"] == "kernelstate-login")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not [c for c in alice.context.cookies() if c["name"] == "ks-oauth-flow"], "the flow cookie outlived its callback"
    assert all("cdn.jsdelivr.net" in url for url in alice.outside), alice.outside


def test_pkce_s256_on_the_wire(server: ServeProcess, provider: Provider) -> None:
    """Every authorization request carries an S256 challenge and a nonce; the code is redeemed with the matching
    verifier (the launcher refuses a wrong one, which kernelstate never sends)."""
    callback = start_login(server.url, "/whoami", "bob")
    assert callback.authorize["code_challenge_method"] == "S256" and callback.authorize["nonce"]
    wrong = httpx.post(provider.url + "/oauth2/token", timeout=10, data={
        "grant_type": "authorization_code", "code": callback.code, "client_id": CLIENT_ID,
        "redirect_uri": callback.authorize["redirect_uri"], "code_verifier": "x" * 50})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant", wrong.text
    done = callback.client.get(callback.url)
    assert done.status_code == 302 and done.headers["location"] == "/whoami", done.text
    log = provider.log()
    authorizations = [e for e in log if e["endpoint"] == "authorize" and e["method"] == "POST"]
    exchanges = [e for e in log if e["endpoint"] == "token" and e["grant_type"] == "authorization_code"
                 and e.get("code_verifier") != "x" * 50]
    assert authorizations and exchanges
    for entry in authorizations:
        assert entry["code_challenge_method"] == "S256" and len(entry["code_challenge"]) == 43, entry
    challenges = {e["code_challenge"] for e in authorizations}
    for entry in exchanges:
        assert s256(entry["code_verifier"]) in challenges, entry


def test_tampered_state_is_refused(server: ServeProcess, provider: Provider) -> None:
    callback = start_login(server.url, "/whoami", "alice")
    tampered = callback.url.replace(f"state={callback.state}", "state=" + "A" * len(callback.state))
    refused = callback.client.get(tampered)
    assert refused.status_code == 400 and "state does not match" in refused.text, refused.text
    assert "kernelstate-login" not in callback.client.cookies
    assert not [e for e in provider.log() if e.get("code") == callback.code], "a code with a bad state was redeemed"
    # The flow is spent: the genuine callback, after the tampered one, is refused too.
    assert callback.client.get(callback.url).status_code == 400


def test_replayed_code_is_refused(server: ServeProcess, provider: Provider) -> None:
    callback = start_login(server.url, "/whoami", "alice")
    flow_cookies = httpx.Cookies(callback.client.cookies)
    assert callback.client.get(callback.url).status_code == 302
    # The same callback again, with the flow cookie it came with: this server already used that state.
    replay = httpx.get(callback.url, cookies=flow_cookies, timeout=30)
    assert replay.status_code == 400 and "already used" in replay.text, replay.text
    # The code spliced into a fresh flow of another browser: the provider refuses a redeemed code.
    other = start_login(server.url, "/whoami", "bob")
    spliced = other.url.replace(f"code={other.code}", f"code={callback.code}")
    refused = other.client.get(spliced)
    assert refused.status_code == 403 and "invalid_grant" in refused.text, refused.text
    assert "kernelstate-login" not in other.client.cookies


def test_an_id_token_from_another_issuer_is_refused(server: ServeProcess, provider: Provider) -> None:
    callback = start_login(server.url, "/whoami", "alice")
    provider.configure(token_host="op.example.org")   # the ID token now says iss=http://op.example.org
    try:
        refused = callback.client.get(callback.url)
    finally:
        provider.configure(token_host=None)
    assert refused.status_code == 403 and "ID token could not be verified" in refused.text, refused.text
    assert "iss" in refused.text and "kernelstate-login" not in callback.client.cookies


def test_an_expired_access_token_is_refreshed(alice: SignedIn, provider: Provider) -> None:
    page = alice.page
    first = shown_token(page)
    time.sleep(1.5)    # the token now counts as expired (see TOKEN_MAX_AGE_S)
    page.reload()
    page.wait_for_selector("text=signed in as alice")
    second = shown_token(page)
    assert second != first
    refreshes = [e for e in provider.log() if e["endpoint"] == "token" and e["grant_type"] == "refresh_token"]
    assert refreshes and all(e["refresh_token"] for e in refreshes)
    # The new token is one the provider honours, for the same user.
    answer = httpx.get(provider.url + "/userinfo", headers={"Authorization": f"Bearer {second}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["sub"] == "alice", answer.text


def test_the_authorize_callback_runs_again_on_reconnect(server: ServeProcess, provider: Provider,
                                                        deny_file: Path) -> None:
    callback = start_login(server.url, "/whoami", "bob")
    assert callback.client.get(callback.url).status_code == 302
    cookie = {"Cookie": f"kernelstate-login={callback.client.cookies['kernelstate-login']}"}

    async def flow() -> None:
        tab = ProtocolClient(server.url + "whoami", headers=cookie)
        await tab.fetch_page()
        await tab.connect()
        assert "signed in as bob" in tab.text()
        await tab.close()
        await tab.connect()              # a reconnect while bob is allowed
        await tab.close()
        deny_file.write_text("bob\n")
        try:
            with pytest.raises(Exception, match="403"):
                await tab.connect()      # the reconnect of the same page
        finally:
            deny_file.write_text("")

    run_async(flow())
    page = httpx.get(server.url + "whoami", headers=cookie, timeout=30)
    assert page.status_code == 200


def test_logout_revokes_the_login_and_ends_the_provider_session(server: ServeProcess, provider: Provider) -> None:
    callback = start_login(server.url, "/whoami", "alice")
    client = callback.client
    assert client.get(callback.url).status_code == 302
    copied = dict(client.cookies)
    form = client.get(server.url + "logout")
    xsrf = client.cookies["_xsrf"]
    assert form.status_code == 200
    out = client.post(server.url + "logout", data={"_xsrf": xsrf})
    assert out.status_code == 302 and out.headers["location"].startswith(provider.url + "/oauth2/end_session?")
    assert f"client_id={CLIENT_ID}" in out.headers["location"]
    again = httpx.get(server.url + "whoami", cookies=copied, timeout=30)
    assert again.status_code == 302 and "/oauth_login?" in again.headers["location"]


def test_discovery_refuses_a_document_naming_another_issuer(provider: Provider) -> None:
    """The discovery document must name exactly the configured issuer (OpenID Connect Discovery 1.0, 4.3)."""
    from kernelstate.auth.oidc import DiscoveryError, discover

    assert run_async(discover(provider.url)).issuer == provider.url
    with pytest.raises(DiscoveryError, match=r"says its issuer is 'http://127\.0\.0\.1:\d+', not 'http://127.*/'"):
        run_async(discover(provider.url + "/"))
