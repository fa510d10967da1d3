"""The Jupyter host: an app session's ``ks.state.user`` / ``user_info`` / ``access_token`` from Jupyter's identity."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.jupyter import server_config

WHOAMI = '''
import json
import kernelstate as ks
ks.pane.Str("whoami " + json.dumps({"user": ks.state.user, "info": dict(ks.state.user_info),
                                    "token": ks.state.access_token})).servable()
'''


@pytest.fixture
def jp_server_config() -> Any:
    return server_config(kernel_pool_size=0)


async def test_app_session_sees_the_jupyter_user(ks_ext: Any, jp_root_dir: Path, jp_serverapp: Any,
                                                 jp_auth_header: dict[str, str], jp_http_port: int) -> None:
    (jp_root_dir / "whoami.py").write_text(WHOAMI)
    url = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/whoami.py"
    async with ProtocolClient(url, headers=jp_auth_header, timeout=60) as tab:
        await tab.wait_for(lambda: "whoami" in tab.text(), timeout=60)
        m = re.search(r"whoami (\{.*\})</pre>", tab.text())
        assert m is not None, tab.text()
        seen = json.loads(html.unescape(m.group(1)))
    assert isinstance(seen["user"], str) and seen["user"]
    assert seen["info"]["username"] == seen["user"]
    assert {"name", "display_name"} <= set(seen["info"]) and seen["token"] is None


async def test_authorize_callback_refuses_an_app_in_jupyter(ks_ext: Any, jp_root_dir: Path, jp_serverapp: Any,
                                                            jp_auth_header: dict[str, str], jp_http_port: int) -> None:
    """``ks.config.authorize_callback`` (set in the Jupyter server's process) guards app pages and WebSockets."""
    import kernelstate as ks

    (jp_root_dir / "whoami.py").write_text(WHOAMI)
    (jp_root_dir / "private.py").write_text(WHOAMI)
    seen: list[tuple[str, str]] = []

    def only_whoami(user_info: Any, path: str) -> bool:
        seen.append((user_info["username"], path))
        return path.endswith("/whoami.py") or path.endswith("/whoami.py/ws")

    base = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/"
    ks.config.set("authorize_callback", only_whoami, process=True)
    try:
        with pytest.raises(HTTPClientError) as refused:
            await AsyncHTTPClient().fetch(base + "private.py", headers=jp_auth_header)
        assert refused.value.code == 403 and refused.value.response is not None
        assert b"You are signed in as" in refused.value.response.body
        tab = ProtocolClient(base + "whoami.py", headers=jp_auth_header, timeout=60)
        await tab.fetch_page()
        thief = ProtocolClient(base + "private.py", headers=jp_auth_header)
        thief.token = tab.token
        with pytest.raises(HTTPClientError) as refused:
            await thief.connect()
        assert refused.value.code == 403
        async with tab:
            await tab.wait_for(lambda: "whoami" in tab.text(), timeout=60)
    finally:
        ks.config.set("authorize_callback", None, process=True)
    assert {path.rsplit("/", 1)[-1] for _, path in seen} >= {"private.py", "whoami.py", "ws"}
