"""Notebooks and scripts served as apps from the Jupyter server, each session in a kernel of its own."""
from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from bokeh.models import Button
from jupyter_helpers import server_config
from tornado.httpclient import HTTPClientError

from kernelstate.testing.client import ProtocolClient

GREETER = '''"""Greeter"""
import json, os
import kernelstate as ks

name = ks.state.session_args.get("name", [b"nobody"])[0].decode()
ks.pane.Markdown(f"hello {name}").servable()
request = {
    "cookies": sorted(ks.state.cookies),
    "headers": {k.lower(): v for k, v in ks.state.headers.items()},
    "args": sorted(ks.state.session_args),
    "url": ks.state.request.url,
    "user": ks.state.user,
    "pid": os.getpid(),
}
ks.pane.Str("request " + json.dumps(request)).servable()
clicks = ks.pane.Str("clicks 0")
button = ks.widgets.Button(name="click me")
button.on_click(lambda event: setattr(clicks, "object", f"clicks {button.clicks}"))
ks.Column(button, clicks).servable()
'''


@pytest.fixture
def jp_server_config() -> Any:
    return server_config(kernel_pool_size=1, unused_session_lifetime_ms=800, check_unused_sessions_ms=200)


async def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.1)


def request_seen(tab: ProtocolClient) -> dict[str, Any]:
    """The request values the app's code saw (shown by the app in a Str pane)."""
    m = re.search(r"request (\{.*\})</pre>", tab.text())
    assert m is not None, tab.text()
    return dict(json.loads(html.unescape(m.group(1))))


@pytest.fixture
def app_url(jp_serverapp: Any, jp_http_port: int) -> Any:
    def url(path: str, query: str = "") -> str:
        return f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/{path}" + (f"?{query}" if query else "")
    return url


async def test_app_sessions_run_in_pooled_kernels_isolated_and_shut_down(
        ks_ext: Any, jp_root_dir: Path, jp_serverapp: Any, jp_auth_header: dict[str, str], jp_fetch: Any,
        app_url: Any, jp_http_port: int) -> None:
    """Each session runs the app in its own (pre-started) kernel; ks.state sees the request but no credentials."""
    (jp_root_dir / "apps").mkdir()
    (jp_root_dir / "apps" / "greet.py").write_text(GREETER)
    await wait_until(lambda: ks_ext.pool.ready_count == 1, 60, "pool filled")
    pooled = ks_ext.pool._ready[0][1]
    km = jp_serverapp.kernel_manager
    token = jp_serverapp.identity_provider.token
    cookie = "theme=dark; _xsrf=XSRF-SECRET; username-localhost-1=LOGIN-SECRET; jupyterhub-session-id=HUB-SECRET"
    headers = {**jp_auth_header, "Cookie": cookie, "X-Custom": "yes", "X-XSRFToken": "XSRF-SECRET",
               "Referer": f"http://localhost:{jp_http_port}/lab?token={token}&x=1"}  # same-origin: JupyterLab
    ada = ProtocolClient(app_url("apps/greet.py", f"name=ada&token={token}"), headers=headers, timeout=30)
    async with ada:
        assert "hello ada" in ada.text()
        seen = request_seen(ada)
        assert seen["cookies"] == ["theme"]
        assert seen["headers"]["x-custom"] == "yes" and seen["headers"]["cookie"] == "theme=dark"
        assert not {"authorization", "x-xsrftoken"} & set(seen["headers"])
        assert seen["args"] == ["name"] and token not in seen["url"]
        assert seen["headers"]["referer"] == f"http://localhost:{jp_http_port}/lab?x=1"
        assert isinstance(seen["user"], str) and seen["user"]  # the Jupyter user's name
        assert "SECRET" not in json.dumps(seen) and token not in json.dumps(seen)
        sessions = json.loads((await jp_fetch("kernelstate", "api", "sessions")).body)
        assert [s["kernel_id"] for s in sessions] == [pooled]

        bob = ProtocolClient(app_url("apps/greet.py", "name=bob"), headers=jp_auth_header, timeout=30)
        async with bob:
            assert "hello bob" in bob.text() and "hello ada" not in bob.text()
            assert request_seen(bob)["pid"] != seen["pid"]
            await ada.click(ada.find(Button)[0])
            await ada.wait_for(lambda: "clicks 1" in ada.text())
            await asyncio.sleep(0.3)
            assert "clicks 0" in bob.text()
            sessions = json.loads((await jp_fetch("kernelstate", "api", "sessions")).body)
            assert len({s["kernel_id"] for s in sessions}) == 2
            bob_session = next(s for s in sessions if s["kernel_id"] != pooled)

        # Bob's tab closed: his session expires after its unused lifetime and its kernel is shut down.
        await wait_until(lambda: bob_session["kernel_id"] not in km, 20, "bob's kernel shut down")
        assert pooled in km
        # Ending ada's session from the API closes her tab with a reason and shuts her kernel down.
        ada_id = next(s["id"] for s in json.loads((await jp_fetch("kernelstate", "api", "sessions")).body))
        r = await jp_fetch("kernelstate", "api", "sessions", ada_id, method="DELETE")
        assert r.code == 204
        code, reason = await ada.wait_closed()
        assert code == 4404 and "ended" in (reason or "")
        await wait_until(lambda: pooled not in km, 20, "ada's kernel shut down")
    await wait_until(lambda: ks_ext.pool.ready_count == 1, 60, "pool refilled")


async def test_notebook_app_index_and_errors(ks_ext: Any, jp_root_dir: Path, jp_fetch: Any,
                                             jp_auth_header: dict[str, str], jp_serverapp: Any, app_url: Any) -> None:
    """A notebook is served as an app; the index lists kernelstate notebooks; a failing app gets a clear 500."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny dashboard"),
                nbformat.v4.new_code_cell("import kernelstate as ks\n%matplotlib inline"),
                nbformat.v4.new_code_cell("ks.pane.Markdown('from a notebook').servable()")]
    (jp_root_dir / "notebooks").mkdir()
    nbformat.write(nb, jp_root_dir / "notebooks" / "tiny.ipynb")
    (jp_root_dir / "notebooks" / "plain.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (jp_root_dir / "broken.py").write_text(
        "import kernelstate as ks\nraise RuntimeError('the app is broken <b>on purpose</b>')\nks.pane.Str('x').servable()\n")
    (jp_root_dir / "pkg").mkdir()
    (jp_root_dir / "pkg" / "__init__.py").write_text("")
    (jp_root_dir / "pkg" / "module.py").write_text("import kernelstate as ks\nks.pane.Str('x').servable()\n")

    index = (await jp_fetch("kernelstate", "")).body.decode()
    assert "notebooks/tiny.ipynb" in index and "broken.py" in index
    assert "plain.ipynb" not in index and "module.py" not in index

    async with ProtocolClient(app_url("notebooks/tiny.ipynb"), headers=jp_auth_header, timeout=60) as tab:
        assert "from a notebook" in tab.text()
        assert tab.html is not None and "<title>Tiny dashboard</title>" in tab.html
        assert "kernelstate/static/js/bokeh" in tab.html

    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kernelstate", "apps", "broken.py")
    assert err.value.code == 500
    body = err.value.response.body.decode()
    assert "the app is broken &lt;b&gt;on purpose&lt;/b&gt;" in body and "<b>on purpose" not in body
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kernelstate", "apps", "notebooks/tiny.ipynb", params={"kernel": "no-such-kernel"})
    assert err.value.code == 400
    await wait_until(lambda: len(ks_ext.pool.started) <= 1, 20, "failed app's kernel shut down")
    assert (await jp_fetch("api", "status")).code == 200


@pytest.mark.parametrize("jp_server_config", [server_config(reuse_sessions=True)], ids=["reuse"])
async def test_reuse_sessions_serve_the_cached_page_and_start_the_session_on_connect(
        ks_ext: Any, jp_root_dir: Path, jp_auth_header: dict[str, str], jp_serverapp: Any, app_url: Any) -> None:
    """With reuse_sessions, later requests get the cached page at once; their session starts when the WebSocket connects."""
    (jp_root_dir / "clock.py").write_text(
        "import os\nimport kernelstate as ks\nks.pane.Markdown('a clock').servable()\n"
        "ks.pane.Str(f'pid {os.getpid()}').servable()\n")
    km = jp_serverapp.kernel_manager
    first = ProtocolClient(app_url("clock.py"), headers=jp_auth_header, timeout=60)
    await first.fetch_page()
    kernels = set(km.list_kernel_ids())
    second = ProtocolClient(app_url("clock.py"), headers=jp_auth_header, timeout=60)
    await second.fetch_page()
    assert set(km.list_kernel_ids()) == kernels, "a cached page started a kernel before its WebSocket connected"
    assert second.token != first.token and ks_ext.reuse.hits == 1
    async with first, second:
        assert "a clock" in second.text()
        pids = {re.search(r"pid (\d+)", tab.text()).group(1) for tab in (first, second)}  # type: ignore[union-attr]
        assert len(pids) == 2
        assert len(ks_ext.manager) == 2
