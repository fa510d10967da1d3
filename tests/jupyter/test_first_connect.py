"""The extension's app sessions under the shared session limits (issue 13, item 6): a page that does
not connect within ``first_connect_timeout_s`` gives its kernel back, and its late WebSocket still
gets a session; one client address holds at most its share of ``max_sessions``."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Button
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.jupyter import server_config

APP = '''"""Late"""
import kernelstate as ks

name = ks.state.session_args.get("name", [b"nobody"])[0].decode()
clicks = ks.pane.Str("clicks 0")
button = ks.widgets.Button(name="click me")
button.on_click(lambda event: setattr(clicks, "object", f"clicks {button.clicks}"))
ks.Column(ks.pane.Markdown(f"hello {name}"), button, clicks).servable()
'''


@pytest.fixture
def jp_server_config() -> Any:
    return server_config(first_connect_timeout_s=1.0, max_sessions=2, unused_session_lifetime_ms=60000,
                         check_unused_sessions_ms=200)


async def test_unconnected_app_page_frees_its_kernel_and_a_late_websocket_recreates_it(
        ks_ext: Any, jp_root_dir: Path, jp_auth_header: dict[str, str], jp_serverapp: Any,
        jp_http_port: int) -> None:
    (jp_root_dir / "late.py").write_text(APP)
    url = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/late.py?name=ada"
    km = jp_serverapp.kernel_manager
    tab = ProtocolClient(url, headers=jp_auth_header, timeout=60)
    await tab.fetch_page()
    assert len(ks_ext.manager) == 1
    kernel = ks_ext.manager.entries()[0].host.kernel_id
    # Its share of max_sessions=2 is 1: the same client's second page is refused, with the reason.
    refused = await AsyncHTTPClient().fetch(HTTPRequest(url, headers=jp_auth_header, request_timeout=60),
                                            raise_error=False)
    assert refused.code == 503 and b"is at its limit of 1 sessions" in refused.body
    deadline = asyncio.get_running_loop().time() + 20
    while len(ks_ext.manager) or kernel in km.list_kernel_ids():
        assert asyncio.get_running_loop().time() < deadline, "the unconnected session kept its kernel"
        await asyncio.sleep(0.1)
    await tab.connect()
    try:
        assert "hello ada" in tab.text()
        await tab.click(tab.find(Button)[0])
        await tab.wait_for(lambda: "clicks 1" in tab.text())
        assert ks_ext.manager.entries()[0].host.kernel_id != kernel
    finally:
        await tab.close()
