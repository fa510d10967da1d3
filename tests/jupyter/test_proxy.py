"""The jupyter-server-proxy launcher entry point, and proxied URLs computed from the environment."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from bokeh.models import Button
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.jupyter.proxy import (
    DIR_ENV,
    PROXY_NAME,
    UPSTREAM_HOST,
    JupyterLocation,
    jupyter_location,
    setup_kernelstate,
    without_stale_prefix,
)
from kernelstate.testing import ProtocolClient
from kernelstate.testing.jupyter import launcher_processes, login_cookie

APPS = Path(__file__).resolve().parents[1] / "server" / "apps"


def render(value: Any, port: int) -> Any:
    """What jupyter-server-proxy does to the templated settings."""
    if isinstance(value, str):
        return value.format(port=port, base_url="/user/test/", unix_socket="")
    if isinstance(value, list):
        return [render(v, port) for v in value]
    if isinstance(value, dict):
        return {render(k, port): render(v, port) for k, v in value.items()}
    return value


def test_entry_point_is_a_valid_server_process() -> None:
    """The `jupyter_serverproxy_servers` entry point loads, and jupyter-server-proxy accepts its settings:
    an owner-only Unix socket, nothing secret on the command line."""
    config = pytest.importorskip("jupyter_server_proxy.config")
    found = [ep for ep in entry_points(group="jupyter_serverproxy_servers") if ep.value.startswith("kernelstate.")]
    assert [ep.name for ep in found] == [PROXY_NAME]
    process = config.ServerProcess(name=found[0].name, **found[0].load()())
    assert process.launcher_entry.enabled and process.launcher_entry.title == "kernelstate apps"
    assert process.launcher_entry.path_info == "kernelstate-proxy/"
    icon = Path(process.launcher_entry.icon_path)
    assert icon.suffix == ".svg" and icon.read_text(encoding="utf-8").lstrip().startswith("<svg")
    assert process.absolute_url is False and process.timeout >= 30
    # A socket in a folder jupyter-server-proxy makes (mkdtemp: 0700); no TCP port, no prefix on argv.
    assert process.unix_socket is True
    assert process.command[process.command.index("--unix-socket") + 1] == "{unix_socket}"
    assert not {"--port", "--address", "--prefix", "--secret-key"} & set(process.command)
    assert process.request_headers_override == {"Host": UPSTREAM_HOST, "Origin": f"http://{UPSTREAM_HOST}"}
    assert PROXY_NAME != "kernelstate"


def test_folder_names_with_braces_survive_the_command_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """jupyter-server-proxy formats every argument; a folder named with braces reaches the server as it is."""
    monkeypatch.setenv(DIR_ENV, "/srv/apps {x}/{port}")
    command = render(setup_kernelstate()["command"], 8000)
    assert command[command.index("serve") + 1] == "/srv/apps {x}/{port}"


def test_bookmarks_under_an_old_secret_prefix_are_redirected() -> None:
    """A path under an earlier launcher's /ks-<hex> prefix redirects to the same app without it, query kept;
    every other response passes untouched."""
    from tornado.httputil import HTTPHeaders

    from kernelstate.reuse import make_request

    stale = "/ks-" + "0123456789abcdef" * 2
    assert without_stale_prefix(stale + "/counter") == "/counter"
    assert without_stale_prefix(stale) == "/" and without_stale_prefix(stale[1:] + "/x") == "/x"
    assert without_stale_prefix("/counter") is None and without_stale_prefix("/ks-apps/x") is None
    assert without_stale_prefix(stale + "0/x") is None        # not a prefix segment

    rewrite = setup_kernelstate()["rewrite_response"]
    response = SimpleNamespace(code=404, body=b"not found", headers=HTTPHeaders({"Content-Type": "text/html"}))
    rewrite(response=response, path=stale + "/counter",
            request=make_request("/user/x/kernelstate-proxy/ks-0/counter?a=1"))
    assert (response.code, response.body, response.headers["Location"]) == (302, b"", "/counter?a=1")
    assert "Content-Type" not in response.headers
    page = SimpleNamespace(code=200, body=b"page", headers=HTTPHeaders())
    rewrite(response=page, path="/counter", request=make_request("/"))
    assert (page.code, page.body) == (200, b"page")


def test_a_socket_that_cannot_be_bound_is_named(tmp_path: Path) -> None:
    """`kernelstate serve --unix-socket` that cannot bind says which socket (not a TCP address) and why."""
    import sys

    missing = tmp_path / "no-such-folder" / "socket"
    out = subprocess.run([sys.executable, "-m", "kernelstate.cli", "serve", str(APPS / "counter.py"),
                          "--unix-socket", str(missing)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert f"cannot listen on Unix socket {missing}" in out.stderr and "No such file or directory" in out.stderr


@pytest.fixture
def jp_server_config(ks_launcher_config: Any) -> Any:
    return ks_launcher_config


async def test_launcher_serves_the_folder_through_jupyter_server_proxy(
        jp_serverapp: Any, http_server_client: Any, jp_root_dir: Path, jp_http_port: int,
        jp_auth_header: dict[str, str]) -> None:
    """The launcher's route starts `kernelstate serve` on its folder behind an owner-only Unix socket and proxies
    page and WebSocket to it, behind Jupyter's auth; the browser's Origin never reaches kernelstate unjudged."""
    shutil.copy(APPS / "counter.py", jp_root_dir / "counter.py")
    origin = f"http://localhost:{jp_http_port}"
    url = f"{origin}{jp_serverapp.base_url}{PROXY_NAME}/"
    client = AsyncHTTPClient()
    index = await client.fetch(HTTPRequest(url, headers=jp_auth_header, request_timeout=90), raise_error=False)
    assert index.code == 200 and b"Counter" in index.body, index.body[:500]
    async with ProtocolClient(url + "counter", headers=jp_auth_header, origin=origin, timeout=30) as tab:
        await tab.click(tab.find(Button)[0])
        await tab.wait_for(lambda: "value is 10" in tab.text())
    # A browser (cookie) session: Jupyter's policy refuses a foreign Origin before anything is proxied.
    cookie = await login_cookie(f"{origin}{jp_serverapp.base_url}", jp_serverapp.identity_provider.token)
    foreign = ProtocolClient(url + "counter", headers={"Cookie": cookie}, origin="http://evil.example")
    await foreign.fetch_page()
    with pytest.raises(Exception, match="403"):
        await foreign.connect()
    anonymous = await client.fetch(HTTPRequest(url + "counter", follow_redirects=False), raise_error=False)
    assert anonymous.code in (302, 403), anonymous.code
    # A bookmark from a launcher that still used a secret prefix finds its app.
    stale = await client.fetch(HTTPRequest(f"{url}ks-{'0' * 32}/counter?x=1", headers=jp_auth_header,
                                           follow_redirects=False), raise_error=False)
    assert (stale.code, stale.headers.get("Location")) == (302, f"{jp_serverapp.base_url}{PROXY_NAME}/counter?x=1")

    [server] = launcher_processes()
    argv = server.cmdline()
    socket_path = Path(argv[argv.index("--unix-socket") + 1])
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    assert not [c for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert not re.search(r"ks-[0-9a-f]{32}", " ".join(argv)), argv


def test_location_from_jupyterhub_environment() -> None:
    """JUPYTERHUB_SERVICE_PREFIX gives the proxy path; JUPYTERHUB_PUBLIC_URL (when set) the origin."""
    location = jupyter_location({"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/", "JPY_PARENT_PID": "1"})
    assert location == JupyterLocation("/user/alice/", "", True, "JUPYTERHUB_SERVICE_PREFIX")
    assert location.proxy_url(5006, "/ks-abc/") == "/user/alice/proxy/5006/ks-abc/"
    public = jupyter_location({"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
                               "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/"})
    assert public is not None and public.proxy_url(5006) == "https://hub.example.org/user/alice/proxy/5006/"


def test_location_from_explicit_url() -> None:
    """$KERNELSTATE_JUPYTER_URL wins over everything (for setups nothing else reveals)."""
    location = jupyter_location({"KERNELSTATE_JUPYTER_URL": "https://lab.example.org/jupyter",
                                 "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    assert location is not None
    assert location.proxy_url(7000, "/x/") == "https://lab.example.org/jupyter/proxy/7000/x/"


def test_location_from_the_parent_jupyter_server(tmp_path: Path) -> None:
    """A kernel started by a Jupyter server finds it by JPY_PARENT_PID in the runtime directory."""
    info = {"pid": 4242, "url": "http://127.0.0.1:8888/user/test/", "base_url": "/user/test/", "token": "t"}
    (tmp_path / "jpserver-4242.json").write_text(json.dumps(info), encoding="utf-8")
    location = jupyter_location({"JPY_PARENT_PID": "4242"}, runtime_dir=tmp_path)
    assert location is not None and location.proxied
    assert location.proxy_url(9000, "/ks-1/") == "http://127.0.0.1:8888/user/test/proxy/9000/ks-1/"
    root = {**info, "url": "http://localhost:8888/", "base_url": "/"}
    (tmp_path / "jpserver-4243.json").write_text(json.dumps(root), encoding="utf-8")
    at_root = jupyter_location({"JPY_PARENT_PID": "4243"}, runtime_dir=tmp_path)
    assert at_root is not None and not at_root.proxied      # a local Jupyter at /: direct links work
    assert jupyter_location({"JPY_PARENT_PID": "999999"}, runtime_dir=tmp_path) is None
    assert jupyter_location({}, runtime_dir=tmp_path) is None
    (tmp_path / "jpserver-4244.json").write_text("{not json", encoding="utf-8")
    assert jupyter_location({"JPY_PARENT_PID": "4244"}, runtime_dir=tmp_path) is None


def test_proxy_module_is_standard_library_only() -> None:
    """The Jupyter server imports the entry point at startup: it must not pull in Bokeh or Tornado."""
    import sys

    code = ("import sys, kernelstate.jupyter.proxy as p; p.setup_kernelstate()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bokeh', 'tornado', 'jupyter_server'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, DIR_ENV: str(APPS)})
    assert out.stdout.strip() == "[]"
