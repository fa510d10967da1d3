"""Helpers for the widget transport's browser tests: a JupyterLab process, Chromium, a kernel probe."""
from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest

CHROMIUM = os.environ.get("KERNELSTATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
# [hosted Documents, ipywidgets instances (each output's widget and its Layout), live cell sessions]
COUNT_LIVE = ("[len(__import__('kernelstate.jupyter.comm', fromlist=['x']).kernel_documents()),"
              " len(__import__('ipywidgets.widgets.widget', fromlist=['x'])._instances),"
              " __import__('kernelstate.session', fromlist=['x']).registry.live('cell')]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.2)


@dataclass
class Lab:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    home: Path

    def api(self, path: str, method: str = "GET") -> Any:
        request = Request(self.url + path, method=method, data=b"" if method == "POST" else None,
                          headers={"Authorization": f"token {self.token}"})
        with urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_value(self, expr: str) -> Any:
        """Evaluate a JSON-able expression in the (only) kernel, through its connection file."""
        from jupyter_client import BlockingKernelClient

        (kernel,) = self.api("api/kernels")
        client = BlockingKernelClient(connection_file=str(self.home / "runtime" / f"kernel-{kernel['id']}.json"))
        client.load_connection_file()
        client.start_channels()
        try:
            msg_id = client.execute("", silent=True, store_history=False,
                                    user_expressions={"v": f"__import__('json').dumps({expr})"})
            while True:
                reply = client.get_shell_msg(timeout=30)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
        finally:
            client.stop_channels()
        result = reply["content"]["user_expressions"]["v"]
        assert result.get("status") == "ok", result
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))


@contextmanager
def jupyter_lab(root: Path, home: Path, extension: bool) -> Iterator[Lab]:
    """``jupyter lab`` on a free port, with kernelstate's server extension enabled or not, writing nothing to ~."""
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "PYTHONUNBUFFERED": "1"}
    (home / "config").mkdir(parents=True)
    # The user config overrides the installed one (which enables the extension).
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"kernelstate.jupyter": extension}}}))
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    log = home / "jupyter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}", "--allow-root",
             "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
             "--LabApp.extension_manager=readonly", *(["--KernelstateApp.kernel_pool_size=0"] if extension else [])],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    lab = Lab(proc, f"http://127.0.0.1:{port}/", token, home)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                lab.api("api/status")
                break
            except (URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("jupyter lab did not start:\n" + log.read_text(errors="replace")[-3000:])
                time.sleep(0.3)
        yield lab
    finally:
        try:
            for kernel in lab.api("api/kernels"):
                lab.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except (URLError, OSError):
            pass
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} missing)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any) -> Any:
    """A page recording its errors and every request URL."""
    context = browser.new_context()
    page = context.new_page()
    page.errors = []
    page.requests = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("websocket", lambda ws: page.requests.append(ws.url))
    return page


def wait_for_idle_kernel(lab: Lab, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(s["kernel"]["execution_state"] == "idle" for s in lab.api("api/sessions")):
        assert time.monotonic() < deadline, "the notebook's kernel did not become idle"
        time.sleep(0.3)


def lab_command(page: Any, command: str) -> None:
    page.evaluate(f"window.jupyterapp.commands.execute({json.dumps(command)})")


def drag_to_end(page: Any, root: Any) -> None:
    """Drag a BokehJS slider's handle past the right end of its track."""
    handle = root.locator(".noUi-handle").first
    track = root.locator(".noUi-base").first
    box, end = handle.bounding_box(), track.bounding_box()
    assert box is not None and end is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] + 20, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()


def foreign_requests(page: Any, origin: str) -> list[str]:
    """Requests that did not go to ``origin`` (blob: and data: URLs are the page's own)."""
    ws_origin = origin.replace("http", "ws", 1)
    return [u for u in page.requests if not (u.startswith(origin) or u.startswith(ws_origin)
                                             or u.startswith(("blob:", "data:", "about:")))]
