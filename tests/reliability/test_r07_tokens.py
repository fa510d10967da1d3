"""R7: tokens and session ids.

Sessions are signed by default (a random key per process); a token from
another server, a forged unsigned Bokeh token, an altered token and a
client-chosen session id are refused with 403 before the upgrade and create
no session; the signature is checked before anything is decoded (a zlib bomb
costs nothing); an expired token cannot start a session; a page never carries
request secrets; session pages are not cacheable.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
import zlib
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.web.tokens import Signer
from kernelstate.testing import ClosedError, ProtocolClient, session_id_from_token

from .conftest import RawWebSocket, fetch, rss_mb, run


def app() -> Any:
    return ks.pane.Str("token test")


async def refused(url: str, token: str) -> int:
    """The HTTP status of a WebSocket upgrade attempt with ``token`` (101 if it was accepted)."""
    ws = RawWebSocket(url, token)
    try:
        return ws.status
    finally:
        ws.close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tokens_are_signed_per_server_and_forgeries_refused(ks_server: Any, monkeypatch: pytest.MonkeyPatch,
                                                            figures: Any) -> None:
    """Another server's token, bokeh's unsigned token (§1.1 probe), altered tokens, chosen ids: all 403, 0 sessions."""
    monkeypatch.delenv("KERNELSTATE_SECRET_KEY", raising=False)
    one, other = ks_server(app), ks_server(app)
    from bokeh.util.token import generate_jwt_token, generate_session_id

    async def main() -> None:
        tab = ProtocolClient(other.url)
        await tab.fetch_page()
        foreign = tab.token
        page = ProtocolClient(one.url)
        await page.fetch_page()
        good = page.token
        body, sig = good.split(".", 1)
        forged_bokeh = generate_jwt_token(generate_session_id(signed=False), signed=False,
                                          extra_payload={"cookies": {"user": "mallory-as-admin"}})
        chosen = Signer(b"guess").token("chosen", 300)
        unsigned_id = b64(json.dumps({"session_id": "chosen", "session_expiry": time.time() + 300}).encode())
        cases = {
            "another server's token": foreign,
            "bokeh unsigned token with forged cookies": forged_bokeh,
            "chosen session id, wrong key": chosen,
            "unsigned payload with our signature field missing": unsigned_id,
            "unsigned payload, real signature of another body": unsigned_id + "." + sig,
            "real id re-signed with a guessed key": Signer(b"guess").token(page.session_id, 300),
            "empty": "",
            "junk": "junk",
        }
        for i in range(0, len(body), max(1, len(body) // 12)):
            flipped = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1:]
            cases[f"body altered at {i}"] = f"{flipped}.{sig}"
        for i in range(0, len(sig), max(1, len(sig) // 6)):
            flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
            cases[f"signature altered at {i}"] = f"{body}.{flipped}"
        for name, token in cases.items():
            status = await refused(one.url.rstrip("/") + "/", token)
            assert status == 403, f"{name}: {status}"
        figures("forged/altered tokens refused with 403", len(cases))
        # Bokeh's ?bokeh-session-id=chosen picks nothing: the page gets a fresh signed id.
        chosen_page = ProtocolClient(one.url + "?bokeh-session-id=chosen")
        await chosen_page.fetch_page()
        assert chosen_page.session_id != "chosen" and one.signer.check_session_id(chosen_page.session_id)
        assert "chosen" not in chosen_page.html
        assert len(one.manager) == 2 and len(other.manager) == 1  # only the three real page loads
        async with ProtocolClient(one.url) as ok:
            assert "token test" in ok.text()

    run(main)


def test_signature_is_checked_before_decoding(ks_server: Any, figures: Any) -> None:
    """A 60 KB token and a zlib bomb under a bad signature are refused fast, without decompressing anything."""
    server = ks_server(app)
    bomb = zlib.compress(b"\x00" * (100 * 2**20), 9)  # ~100 KB -> 100 MB
    payload = {"session_id": "x", "session_expiry": time.time() + 300,
               "__bk__zlib_": base64.b64encode(bomb[:3000]).decode()}
    small_bomb = b64(json.dumps(payload).encode()) + ".AAAA"
    big = b64(json.dumps({**payload, "__bk__zlib_": base64.b64encode(bomb[:60_000]).decode()}).encode()) + ".AAAA"

    async def main() -> list[float]:
        times = []
        for token in (small_bomb, big) * 5:
            t0 = time.perf_counter()
            status = await refused(server.url.rstrip("/") + "/", token)
            times.append(time.perf_counter() - t0)
            # 403; or, for a token larger than tornado's 64 KB header limit, the connection is
            # closed before any handler runs.
            assert status == 403 or (token is big and status == 0), status
        return times

    rss0 = rss_mb()
    times = run(main)
    growth = rss_mb() - rss0
    figures("bomb tokens: slowest refusal ms, RSS growth MB", f"{max(times) * 1000:.1f}, {growth:+.1f}")
    assert max(times) < 0.05
    assert growth < 5
    assert len(server.manager) == 0


def test_expired_token_cannot_start_a_session(ks_server: Any) -> None:
    """A page opened after --session-token-expiration is told 4401 'token expired' (and nothing is created)."""
    server = ks_server(app, session_token_expiration_s=0.3, unused_session_lifetime_ms=60000)

    async def main() -> None:
        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        sid = tab.session_id
        server.manager.destroy(sid)  # as if the session had expired while the page waited
        await asyncio.sleep(0.5)
        with pytest.raises(ClosedError) as err:
            await tab.connect()
        assert err.value.code == 4401 and "token expired" in (err.value.reason or "")
        assert server.manager.get(sid) is None

    run(main)


SENTINELS = {
    "cookie": "S3NT1NEL-COOKIE",
    "httponly": "S3NT1NEL-HTTPONLY",
    "xsrf": "S3NT1NEL-XSRF",
    "authorization": "S3NT1NEL-AUTH",
    "jupyter_token": "S3NT1NEL-JPYTOKEN",
    "header": "S3NT1NEL-HEADER",
}


def test_pages_carry_no_request_secrets_and_are_not_cached(ks_server: Any, figures: Any) -> None:
    """Token and page hold none of the request's cookies, auth headers, ?token= or _xsrf; no-store everywhere."""
    server = ks_server({"app": app, "broken": lambda: 1 / 0}, max_sessions=50)
    headers = {
        "Cookie": f"user={SENTINELS['cookie']}; session={SENTINELS['httponly']}; _xsrf={SENTINELS['xsrf']}",
        "Authorization": f"token {SENTINELS['authorization']}",
        "X-Forwarded-User": SENTINELS["header"],
    }

    async def main() -> None:
        url = server.url + f"app?token={SENTINELS['jupyter_token']}&_xsrf={SENTINELS['xsrf']}"
        tab = ProtocolClient(url, headers=headers)
        await tab.fetch_page()
        body = tab.token.split(".")[0]
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        assert set(json.loads(decoded)) == {"session_id", "session_expiry"}
        for name, value in SENTINELS.items():
            assert value not in tab.html, f"{name} leaked into the page"
            assert value not in decoded, f"{name} leaked into the token"
        # ... while the app on the server can still read them.
        entry = server.manager.get(session_id_from_token(tab.token))
        assert entry is not None and entry.host.session.request.cookies["user"] == SENTINELS["cookie"]
        for path in ("app", "broken", ""):
            response = await fetch(server.url + path, headers=headers)
            assert response.headers.get("Cache-Control") == "no-store", (path, response.code)
            for value in SENTINELS.values():
                assert value not in response.body.decode(), (path, value)

    run(main)
    figures("sentinels checked in token and pages", len(SENTINELS))
