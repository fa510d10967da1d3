"""Issue 13 item 3 and the extension's "decide and document" items.

- a cross-site navigation never runs code as the signed-in Jupyter user: it gets a
  same-origin confirmation page (a POST with Jupyter's ``_xsrf``) and no kernel starts;
- only files that are kernelstate apps are served; app kernels are capped per user;
- the sessions API shows and ends only the caller's own sessions;
- a forged app token with a non-ASCII byte is a 403, not a 500.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from jupyter_helpers import server_config
from test_security import HeaderIdentity, Server, server  # noqa: F401  (the server fixture)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.testing.client import ProtocolClient

APP = "kernelstate/apps/app.py?city=Paris"


async def get(server: Server, path: str, **headers: str) -> Any:
    request = HTTPRequest(server.base + path, headers=headers, follow_redirects=False, request_timeout=60)
    return await AsyncHTTPClient().fetch(request, raise_error=False)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Referer": "https://evil.example/page"},
    {"Origin": "null"},
], ids=["sec-fetch-cross-site", "sec-fetch-same-site", "foreign-referer", "null-origin"])
async def test_cross_site_navigation_asks_before_running(server: Server, ks_ext: Any, headers: dict[str, str]) -> None:
    cookie = await server.login_cookie()
    response = await get(server, APP, Cookie=cookie, **headers)
    page = response.body.decode()
    assert response.code == 200 and "Run app.py as" in page and 'method="post"' in page
    assert 'name="_xsrf"' in page
    assert len(ks_ext.manager) == 0, "a cross-site GET must not start the app"


async def test_confirmation_runs_the_app_same_origin(server: Server, ks_ext: Any) -> None:
    """The form's POST (with ``_xsrf``) redirects (303) to the same URL; that same-origin GET runs the app."""
    cookie = await server.login_cookie()
    page = (await get(server, APP, Cookie=cookie, **{"Sec-Fetch-Site": "cross-site"})).body.decode()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert xsrf is not None
    xsrf_cookie = f"_xsrf={xsrf.group(1)}"
    no_xsrf = await AsyncHTTPClient().fetch(HTTPRequest(server.base + APP, method="POST", body="",
                                                        headers={"Cookie": cookie}, follow_redirects=False),
                                            raise_error=False)
    assert no_xsrf.code == 403 and len(ks_ext.manager) == 0
    confirmed = await AsyncHTTPClient().fetch(HTTPRequest(
        server.base + APP, method="POST", body=f"_xsrf={xsrf.group(1)}", follow_redirects=False,
        headers={"Cookie": f"{cookie}; {xsrf_cookie}", "Sec-Fetch-Site": "same-origin",
                 "Content-Type": "application/x-www-form-urlencoded"}), raise_error=False)
    assert confirmed.code == 303 and confirmed.headers["Location"].endswith(APP)
    tab = ProtocolClient(server.base + APP, headers={"Cookie": cookie, "Sec-Fetch-Site": "same-origin"},
                         origin=server.base.rsplit("/", 2)[0].rstrip("/"), timeout=60)
    async with tab:
        assert "secure app" in tab.text()


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}],
                         ids=["same-origin", "typed-url", "no-fetch-metadata"])
async def test_same_origin_and_typed_urls_run_at_once(server: Server, headers: dict[str, str]) -> None:
    cookie = await server.login_cookie()
    response = await get(server, APP, Cookie=cookie, **headers)
    assert response.code == 200 and "Run app.py as" not in response.body.decode()


async def test_only_kernelstate_apps_are_served(server: Server) -> None:
    """A script under the root that is not a kernelstate app is never run by the app route."""
    (server.root / "plain.py").write_text("open('/tmp/kernelstate-should-not-run', 'w').write('ran')\n")
    auth = {"Authorization": f"token {server.token}"}
    assert await server.status("kernelstate/apps/plain.py", **auth) == 404


async def test_non_ascii_app_token_is_403(server: Server) -> None:
    cookie = await server.login_cookie()
    host = server.base.split("/")[2]
    status = await server.ws_status("kernelstate/apps/app.py/ws", subprotocols=["bokeh", "ab.c\u00e9d"],
                                    Cookie=cookie, Origin=f"http://{host}")
    assert status == 403


USERS = server_config({"identity_provider_class": HeaderIdentity}, max_sessions_per_user=1)


@pytest.mark.parametrize("jp_server_config", [USERS], ids=["users"])
async def test_sessions_api_and_kernel_cap_are_per_user(server: Server, ks_ext: Any) -> None:
    """Alice sees and ends only her sessions; Bob cannot end hers; each user has at most one app kernel here."""
    alice = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"X-Test-User": "alice"}, timeout=60)
    await alice.fetch_page()
    assert (await get(server, "kernelstate/apps/app.py", **{"X-Test-User": "alice"})).code == 503
    bob = ProtocolClient(server.base + "kernelstate/apps/app.py", headers={"X-Test-User": "bob"}, timeout=60)
    await bob.fetch_page()

    async def sessions(user: str) -> list[dict[str, Any]]:
        import json

        return list(json.loads((await get(server, "kernelstate/api/sessions", **{"X-Test-User": user})).body))

    alice_sessions, bob_sessions = await sessions("alice"), await sessions("bob")
    assert len(alice_sessions) == 1 and len(bob_sessions) == 1 and alice_sessions[0]["id"] != bob_sessions[0]["id"]
    xsrf = {"Cookie": "_xsrf=0123456789abcdef", "X-XSRFToken": "0123456789abcdef"}
    delete = HTTPRequest(server.base + f"kernelstate/api/sessions/{alice_sessions[0]['id']}", method="DELETE",
                         headers={"X-Test-User": "bob", **xsrf})
    assert (await AsyncHTTPClient().fetch(delete, raise_error=False)).code == 404
    assert len(ks_ext.manager) == 2
    own = HTTPRequest(delete.url, method="DELETE", headers={"X-Test-User": "alice", **xsrf})
    assert (await AsyncHTTPClient().fetch(own, raise_error=False)).code == 204
    assert len(ks_ext.manager) == 1
