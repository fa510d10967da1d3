"""The jupyter-server-proxy launcher entry point, and proxied URLs computed from the environment."""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bokeh.models import Button
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.jupyter.proxy import (DIR_ENV, PROXY_NAME, JupyterLocation, jupyter_location, setup_kernelstate,
                                       under_prefix)
from kernelstate.testing import ProtocolClient

APPS = Path(__file__).resolve().parents[1] / "server" / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """The `jupyter_serverproxy_servers` entry point loads, and jupyter-server-proxy accepts its settings."""
    config = pytest.importorskip("jupyter_server_proxy.config")
    found = [ep for ep in entry_points(group="jupyter_serverproxy_servers") if ep.value.startswith("kernelstate.")]
    assert [ep.name for ep in found] == [PROXY_NAME]
    process = config.ServerProcess(name=found[0].name, **found[0].load()())
    assert process.launcher_entry.enabled and process.launcher_entry.title == "kernelstate apps"
    assert process.launcher_entry.path_info == "kernelstate-proxy/"
    icon = Path(process.launcher_entry.icon_path)
    assert icon.suffix == ".svg" and icon.read_text(encoding="utf-8").lstrip().startswith("<svg")
    assert process.absolute_url is False and process.timeout >= 30
    # Loopback only, and never the extension's own {base_url}kernelstate/ routes.
    assert process.command[process.command.index("--address") + 1] == "127.0.0.1"
    assert PROXY_NAME != "kernelstate"


def test_requests_outside_the_secret_prefix_are_redirected_into_it() -> None:
    """The launcher's URL (and a stale bookmark) redirect under the secret prefix, query kept;
    requests already under it pass untouched."""
    from tornado.httputil import HTTPHeaders

    from kernelstate.reuse import make_request

    settings = setup_kernelstate()
    prefix = settings["command"][settings["command"].index("--prefix") + 1]
    assert re.fullmatch(r"/ks-[0-9a-f]{32}", prefix)
    assert setup_kernelstate()["command"][-1] != prefix      # a new secret per Jupyter server
    stale = "/ks-" + "0" * 32
    assert under_prefix(prefix, "/") == prefix + "/"
    assert under_prefix(prefix, "counter/ws") == prefix + "/counter/ws"
    assert under_prefix(prefix, stale + "/counter") == prefix + "/counter"
    assert under_prefix(prefix, "/ks-apps/x") == prefix + "/ks-apps/x"
    assert under_prefix(prefix, prefix) is None and under_prefix(prefix, prefix + "/counter") is None

    rewrite = settings["rewrite_response"]
    response = SimpleNamespace(code=404, body=b"not found", headers=HTTPHeaders({"Content-Type": "text/html"}))
    rewrite(response=response, path="/counter", request=make_request("/user/x/kernelstate-proxy/counter?a=1"))
    assert (response.code, response.body, response.headers["Location"]) == (302, b"", prefix + "/counter?a=1")
    assert "Content-Type" not in response.headers
    inside = SimpleNamespace(code=200, body=b"page", headers=HTTPHeaders())
    rewrite(response=inside, path=prefix + "/counter", request=make_request("/"))
    assert (inside.code, inside.body) == (200, b"page")


def test_launcher_command_serves_the_notebooks_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's command starts `kernelstate serve` on $KERNELSTATE_PROXY_DIR, loopback, prefix required;
    a proxied tab (with the Origin the proxy substitutes) gets a live session."""
    monkeypatch.setenv(DIR_ENV, str(APPS))
    settings = setup_kernelstate()
    port = free_port()
    command = render(settings["command"], port)
    headers = render(settings["request_headers_override"], port)
    prefix = command[command.index("--prefix") + 1]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        async def visit() -> None:
            client = AsyncHTTPClient()
            deadline = time.monotonic() + 60
            while True:   # jupyter-server-proxy's readiness check: any HTTP answer
                try:
                    response = await client.fetch(base + "/", raise_error=False)
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "kernelstate serve did not start"
                    await asyncio.sleep(0.2)
            assert response.code == 404                      # nothing without the secret prefix
            assert (await client.fetch(base + "/counter", raise_error=False)).code == 404
            index = await client.fetch(HTTPRequest(base + prefix + "/"), raise_error=False)
            assert index.code == 200 and b"Counter" in index.body
            tab = ProtocolClient(base + prefix + "/counter", headers={"Host": "jupyter.example:8888"},
                                 origin=headers["Origin"])
            async with tab:
                await tab.click(tab.find(Button)[0])
                await tab.wait_for(lambda: "value is 10" in tab.text())
            # A browser Origin that reached kernelstate unreplaced would be refused.
            direct = ProtocolClient(base + prefix + "/counter", origin="http://jupyter.example:8888")
            await direct.fetch_page()
            with pytest.raises(Exception, match="403"):
                await direct.connect()

        asyncio.run(visit())
        assert socket.create_connection(("127.0.0.1", port), timeout=2)
        with pytest.raises(OSError):   # bound to loopback only
            socket.create_connection((_non_loopback_address(), port), timeout=2)
    finally:
        proc.terminate()
        proc.wait(10)


def _non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))   # TEST-NET: no packet is sent
            address = str(sock.getsockname()[0])
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    return address


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
