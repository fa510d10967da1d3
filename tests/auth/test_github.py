"""``--oauth-provider github`` through the same real provider as the OIDC tests, its endpoints given the way
GitHub's are (authorize, token, user API): plain OAuth 2 (no ID token, no nonce), PKCE S256, the user from
the user API's ``login``."""
from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from oauth_support import APPS, CLIENT_ID, Provider, oidc_provider, run_async, s256, serve, start_login

from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess

pytestmark = pytest.mark.timeout(120)
# What GitHub's user API answers (abridged); the provider's userinfo endpoint plays it.
OCTOCAT = {"sub": "583231", "login": "octocat", "id": 583231, "name": "The Octocat", "email": "octocat@example.org"}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("op") / "op.log", OCTOCAT) as op:
        yield op


@pytest.fixture(scope="module")
def server(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    deny = tmp_path_factory.mktemp("authz") / "deny"
    deny.write_text("")
    process = serve(str(APPS / "whoami.py"), "--oauth-provider", "github", "--oauth-client-id", CLIENT_ID,
                    "--oauth-authorize-url", provider.url + "/oauth2/authorize",
                    "--oauth-token-url", provider.url + "/oauth2/token",
                    "--oauth-user-url", provider.url + "/userinfo", deny_file=deny)
    yield process
    process.stop()


def test_github_flow(server: ServeProcess, provider: Provider) -> None:
    callback = start_login(server.url, "/whoami", OCTOCAT["sub"])
    sent = callback.authorize
    assert sent["code_challenge_method"] == "S256" and "nonce" not in sent and "openid" not in sent.get("scope", "")
    done = callback.client.get(callback.url)
    assert done.status_code == 302 and done.headers["location"] == "/whoami", done.text
    exchange = next(e for e in provider.log() if e["endpoint"] == "token" and e.get("code") == callback.code)
    assert s256(exchange["code_verifier"]) == sent["code_challenge"]
    cookie = {"Cookie": f"kernelstate-login={callback.client.cookies['kernelstate-login']}"}

    async def page_text() -> str:
        async with ProtocolClient(server.url + "whoami", headers=cookie) as tab:
            return tab.text()

    text = run_async(page_text())
    # The user API's answer names the user (``login``); the app's access token is one that API honours.
    assert "signed in as octocat" in text, text
    token = re.search(r"token (\S+?)<", text)
    assert token is not None, text
    user = httpx.get(provider.url + "/userinfo", headers={"Authorization": f"Bearer {token.group(1)}"}, timeout=10)
    assert user.json()["login"] == "octocat", user.text

def test_github_refuses_a_bad_state(server: ServeProcess) -> None:
    callback = start_login(server.url, "/whoami", OCTOCAT["sub"])
    refused = callback.client.get(callback.url.replace(f"state={callback.state}", "state=forged"))
    assert refused.status_code == 400 and "kernelstate-login" not in callback.client.cookies

