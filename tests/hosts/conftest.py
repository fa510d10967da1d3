"""The hosts, as real processes shared per test module, and a ``host`` fixture parametrized over them.

Starting a host costs seconds (a Jupyter server, kernels), so each service is
module-scoped and started only if a test of the module asks for it:

- ``standalone``: ``kernelstate serve`` on the apps directory, with reuse on;
- ``jupyter``: ``jupyter server`` with the kernelstate extension (reuse on, two pooled
  kernels), rooted at the same apps directory;
- ``cell_kernel``: one kernel of that server, in which cells display the apps.

The Jupyter server is a real ``jupyter server`` process rather than pytest-jupyter's
``jp_serverapp``, whose fixtures are per test: one server per module keeps the run
short, and the extension is loaded from config and started by the server itself.

Sessions end fast (an unused session lives 3 s: long enough for a tab to reconnect on
a loaded machine), so the spec can watch them end.
The apps write to ``$KS_HOSTS_MARKS`` (a directory the test reads), set in
the environment of both servers and so of their kernels.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest
from host_drivers import HOSTS, CellDriver, HostDriver, ServedDriver, WidgetDriver

from kernelstate.testing.jupyter import server_config
from kernelstate.testing.plugin import ServeProcess, start_serve_process

APPS = Path(__file__).resolve().parent / "apps"
UNUSED_SESSION_LIFETIME_MS = 3000
CHECK_UNUSED_SESSIONS_MS = 250
OTHER_EXTENSIONS = ("jupyterlab", "notebook", "notebook_shim", "jupyter_lsp", "jupyter_server_proxy",
                    "jupyter_server_terminals")


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the apps write what the spec reads after a session is gone."""
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def apps_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of tests/hosts/apps: the root both servers serve."""
    root = tmp_path_factory.mktemp("apps")
    for path in APPS.glob("*.py"):
        shutil.copy(path, root / path.name)
    return root


@pytest.fixture(scope="module")
def standalone(apps_root: Path, marks: Path) -> Iterator[ServeProcess]:
    proc = start_serve_process(str(apps_root), "--reuse-sessions",
                               "--unused-session-lifetime", str(UNUSED_SESSION_LIFETIME_MS),
                               "--check-unused-sessions", str(CHECK_UNUSED_SESSIONS_MS),
                               env={"KS_HOSTS_MARKS": str(marks)})
    yield proc
    proc.stop()


@dataclass
class JupyterProcess:
    """A ``jupyter server`` subprocess with the kernelstate extension."""

    proc: subprocess.Popen[bytes]
    base_url: str
    token: str
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        with urlopen(Request(self.base_url + path, data=data, method=method, headers=self.headers), timeout=60) as r:
            text = r.read()
        return json.loads(text) if text else None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # the server shuts its kernels down
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_jupyter(root: Path, home: Path, marks: Path, timeout_s: float = 90.0) -> JupyterProcess:
    """``jupyter server`` on a free port, isolated from the user's Jupyter config; waits until it answers."""
    token = secrets.token_hex(16)
    port = _free_port()
    config = home / "config"
    config.mkdir()
    # The extension as the Jupyter tests load it, but alone: the other extensions installed in
    # the venv would slow every start.
    extensions = {"kernelstate.jupyter": True, **{name: False for name in OTHER_EXTENSIONS}}
    (config / "jupyter_server_config.json").write_text(json.dumps(server_config(
        {"jpserver_extensions": extensions, "open_browser": False, "allow_root": True},
        kernel_pool_size=2, reuse_sessions=True, unused_session_lifetime_ms=UNUSED_SESSION_LIFETIME_MS,
        check_unused_sessions_ms=CHECK_UNUSED_SESSIONS_MS)))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"), "PYTHONUNBUFFERED": "1", "KS_HOSTS_MARKS": str(marks)}
    log_path = home / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
                             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    server = JupyterProcess(proc, f"http://127.0.0.1:{port}/", token, log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter server exited with {proc.returncode}:\n{server.log_text()[-3000:]}")
        try:
            server.api("api/status")
            return server
        except (URLError, ConnectionError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"jupyter server did not answer within {timeout_s}s:\n{server.log_text()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def jupyter(apps_root: Path, marks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    server = start_jupyter(apps_root, tmp_path_factory.mktemp("jupyter"), marks)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cell_kernel(jupyter: JupyterProcess) -> Iterator[str]:
    """The id of a notebook kernel (started through the REST API, as JupyterLab does)."""
    kernel_id = str(jupyter.api("api/kernels", "POST", {"name": "python3"})["id"])
    yield kernel_id
    jupyter.api(f"api/kernels/{kernel_id}", "DELETE")


@pytest.fixture(params=HOSTS)
def host_name(request: pytest.FixtureRequest) -> str:
    """Every host; a test narrows this with ``@pytest.mark.parametrize("host_name", hosts_for(...))``."""
    return str(request.param)


@pytest.fixture
def host(host_name: str, request: pytest.FixtureRequest, apps_root: Path) -> HostDriver:
    """A driver for the host under test; its service is started on first use in the module."""
    if host_name == "standalone":
        proc: ServeProcess = request.getfixturevalue("standalone")
        return ServedDriver(host_name, proc.url.rstrip("/") + "/", "", {})
    server: JupyterProcess = request.getfixturevalue("jupyter")
    if host_name == "jupyter-app":
        return ServedDriver(host_name, server.base_url + "kernelstate/apps/", ".py", server.headers)
    kernel_id = request.getfixturevalue("cell_kernel")
    if host_name == "widget":
        pytest.importorskip("anywidget", reason="the widget transport needs anywidget (pip install kernelstate[widgets])")
        return WidgetDriver(server.log_path.parent / "runtime" / f"kernel-{kernel_id}.json", apps_root)
    return CellDriver(server.base_url, kernel_id, server.headers, apps_root)
