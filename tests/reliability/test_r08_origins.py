"""R8: WebSocket origins are matched exactly, and refused before the upgrade.

The cases are Bokeh's CVE-2026-21883 (suffix match), jupyter_server's
CVE-2026-40110 bypass list (prefix match), ports, ``null`` and ``file://``,
against an explicit ``--allow-websocket-origin`` and against the default
allowlist (the server's own host:port).
"""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernelstate as ks
from kernelstate.web.origins import origin_allowed
from kernelstate.testing import ProtocolClient

from .conftest import RawWebSocket, run

# jupyter-server/jupyter_server: tests/base/test_allow_origin_pat.py
BYPASS_SUFFIXES = [".com.evil.com", ".comedy", ":9999"]


def app() -> Any:
    return ks.pane.Str("origins")


def upgrade_status(server: Any, origin: str | None) -> int:
    async def token() -> str:
        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        return tab.token

    ws = RawWebSocket(server.url, run(token), origin=origin)
    try:
        return ws.status
    finally:
        ws.close()


@pytest.fixture
def dash_server(ks_server: Any) -> Any:
    return ks_server(app, allow_websocket_origin=["dash.corp"])


@pytest.mark.parametrize("origin", [
    "https://dash.corp.evil.com", "https://dash.corpx", "https://xdash.corp", "https://dash.corp:9999",
    "https://evil.com", "null", "file://", "file:///home/user/page.html", "https://dash.corp@evil.com",
    "https://evil.com#dash.corp", "https://dash.corp/path", "javascript://dash.corp",
    *[f"https://dash.corp{suffix}" for suffix in BYPASS_SUFFIXES],
])
def test_explicit_allowlist_refuses_lookalikes_before_upgrade(dash_server: Any, origin: str) -> None:
    """--allow-websocket-origin dash.corp: every lookalike gets 403 before the upgrade."""
    assert upgrade_status(dash_server, origin) == 403


@pytest.mark.parametrize("origin", ["https://dash.corp", "http://dash.corp", "https://dash.corp:443", "https://DASH.CORP"])
def test_explicit_allowlist_accepts_the_exact_origin(dash_server: Any, origin: str) -> None:
    """The allowed host, on its scheme's default port, is accepted (101)."""
    assert upgrade_status(dash_server, origin) == 101


def test_default_allowlist_is_exact(ks_server: Any, figures: Any) -> None:
    """Default: the server's own host:port only; localhost.evil.example:<port> and the bypass list are refused."""
    server = ks_server(app)
    port = server.port
    refused = [f"http://localhost.evil.example:{port}", f"http://localhost:{port}.evil.example", "http://localhost",
               f"http://127.0.0.1:{port + 1}", f"https://evil.localhost:{port}", "null",
               *[f"http://localhost{suffix}" for suffix in BYPASS_SUFFIXES],
               *[f"http://localhost:{port}{suffix}" for suffix in BYPASS_SUFFIXES]]
    accepted = [f"http://localhost:{port}", f"http://127.0.0.1:{port}", f"http://[::1]:{port}"]
    for origin in refused:
        assert upgrade_status(server, origin) == 403, origin
    for origin in accepted:
        assert upgrade_status(server, origin) == 101, origin
    assert upgrade_status(server, None) == 101  # no Origin: not a browser, nothing to hijack
    figures("origins refused / accepted (default allowlist)", f"{len(refused)} / {len(accepted)}")


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, derandomize=True, database=None)
@given(allowed=hosts, origin_host=hosts, port=st.sampled_from([None, 80, 443, 5006, 9999]),
       scheme=st.sampled_from(["http", "https"]))
def test_a_match_means_the_same_host(allowed: str, origin_host: str, port: int | None, scheme: str) -> None:
    """origin_allowed(origin, [host]) holds only for exactly that host (so equal label counts)."""
    origin = f"{scheme}://{origin_host}" + (f":{port}" if port else "")
    if origin_allowed(origin, [allowed]):
        assert origin_host == allowed
        assert origin_host.count(".") == allowed.count(".")
    if origin_allowed(origin, [f"{allowed}:5006"]):
        assert origin_host == allowed and port == 5006
