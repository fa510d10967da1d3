"""The Binder flow as repo2docker runs it, without a container engine.

repo2docker copies the repository, runs ``pip install -r binder/requirements.txt``
from its root (with Python from ``binder/runtime.txt``), and launches
``binder/start jupyter lab ...`` behind a hub that serves it under
``/user/<name>/``. Here: a fresh virtualenv installed from that file alone, the
same start script and a ``base_url`` of ``/user/test/``; then what a user does:
the launcher's "kernelstate apps", a ``%serve``'d app through
``/user/test/proxy/<port>/``, and a live cell output through the extension.

Installing is the slow part (about a minute with a warm pip cache or a local
wheelhouse); the rest takes seconds.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bokeh.models import Button, Slider

from deploy_support import (APP_CELL, APPS, REPO, SERVE_LINK, KernelChannels, Process, clean_env, fetch,
                            free_port, http_status, wait_until)
from kernelstate.jupyter.wire import MIME_TYPE
from kernelstate.testing import ProtocolClient

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]
BASE = "/user/test/"
INSTALL_TIMEOUT_S = 900


def runtime_version() -> str:
    runtime = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    return runtime.removeprefix("python-")


def binder_python() -> str:
    """The Python that binder/runtime.txt asks for, if this machine has it; else the one running the tests."""
    version = runtime_version()
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}"), *sorted(map(str, pyenv.glob(f"{version}.*/bin/python3")))]
    return next((c for c in candidates if c), sys.executable)


def test_runtime_txt_satisfies_requires_python() -> None:
    """repo2docker's default Python is older than bokeh 3.10 allows: runtime.txt must pick one we support."""
    import tomllib

    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert minimum is not None, requires
    assert int(runtime_version().split(".")[1]) >= int(minimum.group(1))


@pytest.fixture(scope="module")
def binder_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with nothing but what binder/requirements.txt installs."""
    reuse = os.environ.get("KERNELSTATE_TEST_BINDER_VENV")   # only to iterate on this file
    if reuse:
        return Path(reuse)
    venv = tmp_path_factory.mktemp("binder") / "venv"
    subprocess.run([binder_python(), "-m", "venv", str(venv)], check=True, timeout=120)
    # As repo2docker does: from the repository root.
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-r", "binder/requirements.txt"],
                         cwd=REPO, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=clean_env())
    if out.returncode != 0:
        pytest.fail(f"pip install -r binder/requirements.txt failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return venv


@dataclass
class Lab:
    url: str          # http://127.0.0.1:PORT/user/test/
    origin: str
    token: str
    venv: Path
    process: Process

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


@pytest.fixture(scope="module")
def lab(binder_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`binder/start jupyter lab` with base_url /user/test/, as a hub would spawn it."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "home"
    (root / "apps").mkdir(parents=True)
    shutil.copy(APPS / "counter.py", root / "apps" / "counter.py")
    port, token = free_port(), secrets.token_hex(16)
    env = clean_env(
        PATH=f"{binder_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), KERNELSTATE_PROXY_DIR=str(root / "apps"),
    )
    process = Process([str(REPO / "binder" / "start"), "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                       f"--port={port}", "--port-retries=0", f"--ServerApp.base_url={BASE}",
                       f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                       *(["--allow-root"] if os.geteuid() == 0 else [])],
                      tmp / "lab.log", env=env, cwd=root).start()
    origin = f"http://127.0.0.1:{port}"
    server = Lab(origin + BASE, origin, token, binder_venv, process)
    try:
        wait_until(lambda: http_status(server.url + "api/status", server.auth) == 200, 90,
                   "jupyter lab", process.alive, process.log)
        yield server
    finally:
        process.stop()


async def cookie_login(lab: Lab) -> dict[str, str]:
    """Log in as a browser does (the token once in the URL); the session's Cookie header."""
    response = await fetch(lab.url + f"lab?token={lab.token}")
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
    assert any(c.startswith("username-") for c in cookies), response.headers
    return {"Cookie": "; ".join(cookies)}


def test_requirements_install_kernelstate_with_its_jupyter_pieces(lab: Lab) -> None:
    """The requirements file installs kernelstate, its extension config and the Jupyter extras;
    JupyterLab starts with the kernelstate extension and jupyter-server-proxy loaded."""
    config = lab.venv / "etc" / "jupyter" / "jupyter_server_config.d" / "kernelstate.json"
    assert json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]["kernelstate.jupyter"] is True
    log = lab.process.log(tail=200_000)
    for extension in ("jupyterlab", "jupyter_server_proxy", "kernelstate.jupyter"):
        assert f"{extension} | extension was successfully loaded" in log, log[-3000:]
    entry = subprocess.run([str(lab.venv / "bin" / "python"), "-c",
                            "from importlib.metadata import entry_points;"
                            "print([e.name for e in entry_points(group='jupyter_serverproxy_servers')])"],
                           capture_output=True, text=True, check=True, env=clean_env())
    assert "kernelstate-proxy" in entry.stdout


def test_start_script_points_the_launcher_at_the_tutorials() -> None:
    """binder/start ends in exec "$@", defaulting the launcher's directory to notebooks/ (an explicit one wins)."""
    start = REPO / "binder" / "start"
    assert os.access(start, os.X_OK)
    printed = subprocess.run([str(start), "sh", "-c", 'echo "$KERNELSTATE_PROXY_DIR"'], capture_output=True,
                             text=True, check=True, env=clean_env()).stdout.strip()
    assert printed == str(REPO / "notebooks")
    kept = subprocess.run([str(start), "sh", "-c", 'echo "$KERNELSTATE_PROXY_DIR"'], capture_output=True, text=True,
                          check=True, env=clean_env(KERNELSTATE_PROXY_DIR="/srv/apps")).stdout.strip()
    assert kept == "/srv/apps"


def test_launcher_entry_serves_apps_through_the_base_url(lab: Lab) -> None:
    """JupyterLab's launcher lists "kernelstate apps"; its route starts `kernelstate serve` and proxies
    page and WebSocket, behind Jupyter's auth."""
    async def visit() -> None:
        info = await fetch(lab.url + "server-proxy/servers-info", headers=lab.auth)
        assert info.code == 200, info.body
        servers = {s["name"]: s for s in json.loads(info.body)["server_processes"]}
        entry = servers["kernelstate-proxy"]["launcher_entry"]
        assert entry["enabled"] and entry["title"] == "kernelstate apps" and entry["path_info"] == "kernelstate-proxy/"
        icon = await fetch(lab.url + "server-proxy/icon/kernelstate-proxy", headers=lab.auth)
        assert icon.code == 200 and b"<svg" in icon.body
        # One app in the directory: a redirect to it, kept under the launcher's URL by the proxy.
        landing = await fetch(lab.url + "kernelstate-proxy/", headers=lab.auth, follow=True)
        assert landing.code == 200 and b"<title>Counter" in landing.body, landing.body[:500]
        assert landing.effective_url.startswith(lab.url + "kernelstate-proxy/"), landing.effective_url
        async with ProtocolClient(lab.url + "kernelstate-proxy/counter", headers=lab.auth, origin=lab.origin) as tab:
            await tab.click(tab.find(Button)[0])
            await tab.wait_for(lambda: "value is 10" in tab.text())
        # Without Jupyter's credentials: a login redirect for pages, 403 for the WebSocket.
        anonymous = await fetch(lab.url + "kernelstate-proxy/counter")
        assert anonymous.code in (302, 403), anonymous.code
        page = ProtocolClient(lab.url + "kernelstate-proxy/counter", headers=lab.auth, origin=lab.origin)
        await page.fetch_page()
        page.headers = {}
        with pytest.raises(Exception, match="403"):
            await page.connect()
        # A browser session (cookie): Jupyter checks the WebSocket's Origin before proxying it.
        browser = await cookie_login(lab)
        async with ProtocolClient(lab.url + "kernelstate-proxy/counter", headers=browser, origin=lab.origin) as tab:
            assert "value is 0" in tab.text()
        foreign = ProtocolClient(lab.url + "kernelstate-proxy/counter", headers=browser, origin="http://evil.example")
        await foreign.fetch_page()
        with pytest.raises(Exception, match="403"):
            await foreign.connect()

    asyncio.run(visit())


def test_serve_from_a_kernel_through_jupyter_server_proxy(lab: Lab) -> None:
    """%serve in a kernel of this server prints {base_url}proxy/{port}/...; page and WebSocket work through it,
    only with Jupyter's credentials; --stop ends it and the kernel keeps running cells."""
    async def flow() -> None:
        started = await fetch(lab.url + "api/kernels", "POST", {"name": "python3"}, lab.auth)
        assert started.code == 201, started.body
        kernel_id = json.loads(started.body)["id"]
        channels = await KernelChannels.open(lab.url, kernel_id, lab.auth)
        try:
            await channels.run("%load_ext kernelstate")
            await channels.run(APP_CELL)
            printed = await channels.run("%serve clicker")
            match = SERVE_LINK.search(printed)
            assert match is not None, printed
            link, port = match.group(0), int(match.group(1))
            assert link.startswith(f"{lab.url}proxy/{port}/ks-"), link
            async with ProtocolClient(link, headers=lab.auth, origin=lab.origin) as tab:
                assert "Served from a kernel" in tab.text()
                await tab.click(tab.find(Button)[0])
                await tab.wait_for(lambda: "1 clicks" in tab.text())
                assert await channels.run("6 * 7") == "42"      # the kernel runs cells meanwhile
            assert (await fetch(link)).code in (302, 403)
            anonymous = ProtocolClient(link, headers=lab.auth, origin=lab.origin)
            await anonymous.fetch_page()
            anonymous.headers = {}
            with pytest.raises(Exception, match="403"):
                await anonymous.connect()
            foreign = ProtocolClient(link, headers=await cookie_login(lab), origin="http://evil.example")
            await foreign.fetch_page()
            with pytest.raises(Exception, match="403"):
                await foreign.connect()
            # The secret prefix is required even through the proxy.
            assert (await fetch(f"{lab.url}proxy/{port}/", headers=lab.auth)).code == 404
            assert f"port {port}" in await channels.run(f"%serve --stop {port}")
            assert (await fetch(link, headers=lab.auth)).code >= 500
            assert await channels.run("'alive'") == "'alive'"
        finally:
            channels.close()
            await fetch(lab.url + f"api/kernels/{kernel_id}", "DELETE", headers=lab.auth)

    asyncio.run(flow())


LIVE_CELL = """
import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
shown = ks.pane.Markdown("n is 3")
slider.param.watch(lambda event: setattr(shown, "object", f"n is {event.new}"), "value")
ks.Column(slider, shown)
"""


def test_live_cell_output_through_the_base_url(lab: Lab) -> None:
    """A component displayed in a cell is live through the extension under /user/test/: the browser's
    change runs the kernel's callback and the kernel sees the new value."""
    async def flow() -> None:
        started = await fetch(lab.url + "api/kernels", "POST", {"name": "python3"}, lab.auth)
        assert started.code == 201, started.body
        kernel_id = json.loads(started.body)["id"]
        channels = await KernelChannels.open(lab.url, kernel_id, lab.auth)
        try:
            await channels.run(LIVE_CELL)
            outputs = [d[MIME_TYPE] for d in channels.data if MIME_TYPE in d]
            assert outputs and outputs[0]["kernel_id"] == kernel_id, channels.data
            out = outputs[0]
            ws_url = (lab.url.replace("http://", "ws://") +
                      f"kernelstate/kernels/{kernel_id}/docs/{out['doc_id']}/view1/ws")
            tab = ProtocolClient(ws_url, headers=await cookie_login(lab), origin=lab.origin, ws_url=ws_url, timeout=20)
            tab.token = out["token"]
            async with tab:
                slider = tab.find(Slider)[0]
                assert slider.value == 3 and "n is 3" in tab.text()
                await tab.set(slider, "value", 7)
                await tab.wait_for(lambda: "n is 7" in tab.text())
                assert await channels.run("slider.value") == "7"
        finally:
            channels.close()
            await fetch(lab.url + f"api/kernels/{kernel_id}", "DELETE", headers=lab.auth)

    asyncio.run(flow())
