"""Stateless pages (--stateless-pages): the token's claims, where the session is made, and what it is made from.

In-process servers (ks_server); two servers sharing a secret stand in for two processes.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.errors import ConfigError
from kernelstate.testing import ClosedError, ProtocolClient
from kernelstate.testing.logs import captured_log
from kernelstate.web.firstuse import FirstUse, FirstUseError

SECRET = "anyproc-pages-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """First-use claims go under the test's own directory, removed with it."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))


def shows_request() -> Any:
    """The query argument and cookie the session was created with (its key covers both, so it is cached)."""
    def key(r: Any) -> Any:
        return (r.path, r.query, r.cookies["who"].value if "who" in r.cookies else None)

    ks.extension(session_key_func=key)
    q = ks.state.session_args.get("q", [b"-"])[0].decode()
    return ks.pane.Str(f"q={q};who={ks.state.cookies.get('who', '-')};")


def payload(token: str) -> dict[str, Any]:
    body = token.split(".", 1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def two_servers(ks_server: Any, app: Any, **options: Any) -> tuple[Any, Any]:
    opts = {"stateless_pages": True, "secret_key": SECRET, **options}
    return ks_server(app, **opts), ks_server(app, **opts)


def test_page_on_one_process_session_on_another(ks_server: Any) -> None:
    """The page from A; its WebSocket to B creates the session there, with the page's query arguments and
    the WebSocket's own cookie; the token carries the path and arguments but never cookies or headers."""
    a, b = two_servers(ks_server, shows_request)

    async def main() -> str:
        tab = ProtocolClient(a.url + "?q=hello", headers={"Cookie": "who=page-cookie", "X-Secret": "s3cret"},
                             ws_url=b.url.replace("http", "ws", 1) + "ws")
        await tab.fetch_page()
        claims = payload(tab.token)["ks_request"]
        assert claims == {"route": "/", "path": "/", "args": {"q": ["hello"]}}, claims
        assert "page-cookie" not in json.dumps(payload(tab.token)) and "s3cret" not in json.dumps(payload(tab.token))
        assert len(a.manager) == 0 and len(b.manager) == 0, "a cache-filling render is gone at once"
        tab.headers = {"Cookie": "who=ws-cookie"}
        async with tab:
            await tab.connect()
            assert len(b.manager) == 1 and len(a.manager) == 0
            await tab.wait_for(lambda: "q=" in tab.text())
            return tab.text()

    assert "q=hello;who=ws-cookie;" in asyncio.run(main())


def test_a_token_creates_one_session_per_machine(ks_server: Any) -> None:
    """A second WebSocket with the same token, on another process after the first made the session, is told
    to reload (4404): a reconnect never silently gets the app's initial values."""
    a, b = two_servers(ks_server, shows_request)

    async def main() -> None:
        first = ProtocolClient(a.url)
        async with first:
            await first.open()
            again = ProtocolClient(b.url, timeout=5)
            again.token = first.token
            with pytest.raises(ClosedError) as closed:
                await again.connect()
            assert closed.value.code == 4404 and "reload" in (closed.value.reason or "")
            await again.close()
            same = ProtocolClient(a.url, timeout=5)   # the process that has it: attaches
            same.token = first.token
            async with same:
                await same.connect()

    asyncio.run(main())
    assert len(b.manager) == 0


def test_claims_for_another_app_or_forged_are_refused(ks_server: Any) -> None:
    server = ks_server({"one": shows_request, "two": shows_request}, stateless_pages=True, secret_key=SECRET)

    async def main() -> None:
        tab = ProtocolClient(server.url + "one")
        await tab.fetch_page()
        other = ProtocolClient(server.url + "two", timeout=5)
        other.token = tab.token
        with pytest.raises(ClosedError) as closed:   # a token of /one does not make a /two session
            await other.connect()
        assert closed.value.code == 4404
        await other.close()
        body, sig = tab.token.split(".", 1)
        forged = payload(tab.token)
        forged["ks_request"]["args"] = {"q": ["forged"]}
        raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        bad = ProtocolClient(server.url + "one", timeout=5)
        bad.token = f"{raw}.{sig}"
        with pytest.raises(Exception, match="403"):
            await bad.connect()

    asyncio.run(main())
    assert len(server.manager) == 0


def test_an_uncacheable_page_is_pinned_and_says_so(ks_server: Any) -> None:
    """A page whose app reads a value the key ignores is rendered as its own session (here, once)."""
    def reads_a_header() -> Any:
        return ks.pane.Str(f"agent={ks.state.headers.get('User-Agent', '-')};")

    server = ks_server(reads_a_header, stateless_pages=True, secret_key=SECRET)

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            await tab.wait_for(lambda: "agent=" in tab.text())

    with captured_log("kernelstate", level=logging.WARNING) as logged:
        asyncio.run(main())
    assert server.manager.created_total == 1
    assert any("stateless pages: the page of / is not cached" in m for m in logged.messages), logged.messages


def test_first_use_claims_are_owner_only_and_swept(tmp_path: Path) -> None:
    directory = tmp_path / "kernelstate-x" / "claims"
    first_use = FirstUse(directory, lifetime_s=0.0)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert first_use.claim("sid") and not first_use.claim("sid")
    first_use.release("sid")
    assert first_use.claim("sid")
    old = next(directory.iterdir())
    os.utime(old, (0, 0))
    assert first_use.sweep() == 1 and first_use.claim("sid")
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    with pytest.raises(FirstUseError, match="only this user"):
        FirstUse(loose / "claims", lifetime_s=1.0)


def test_num_procs_is_a_command_line_flag_only() -> None:
    with pytest.raises(ConfigError, match="kernelstate serve --num-procs N"):
        ks.serve(lambda: ks.pane.Str("x"), num_procs=2, start=False)
