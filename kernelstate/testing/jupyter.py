"""Test helpers for a real Jupyter server with the kernelstate extension (built on pytest-jupyter).

Import the fixtures into a ``conftest.py`` next to ``pytest_jupyter``'s::

    from pytest_jupyter.jupyter_server import *  # noqa: F403
    from kernelstate.testing.jupyter import jp_asyncio_loop, jp_server_config, ks_ext  # noqa: F401

``jp_server_config`` loads the extension with an empty kernel pool and a fast
kernel watch; override it with :func:`server_config` for other settings.

For the jupyter-server-proxy launcher, override ``jp_server_config`` with
``ks_launcher_config``: jupyter-server-proxy is loaded too, the launcher
serves ``jp_root_dir``, and the ``kernelstate serve`` processes it starts are
stopped after the test (:func:`launcher_processes` finds them).
Needs ``kernelstate[jupyter,test]``.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # (no stubs in the test extras)
import pytest
from jupyter_core.utils import ensure_event_loop
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets.config import Config


def server_config(serverapp: dict[str, Any] | None = None, **kernelstate: Any) -> Config:
    """The extension loaded (no kernel pool, fast kernel watch) plus extra ``ServerApp``/``KernelstateApp`` traits."""
    return Config({
        "ServerApp": {"jpserver_extensions": {"kernelstate.jupyter": True, "jupyter_server_terminals": False},
                      **(serverapp or {})},
        "KernelstateApp": {"kernel_pool_size": 0, "kernel_poll_interval_ms": 200, **kernelstate},
    })


@pytest.fixture
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's event loop per test, usable even while Playwright's sync API is alive.

    Between calls, Playwright's sync API marks its own loop as this thread's
    running loop, and pytest-jupyter's ``run_until_complete`` would then refuse
    to run. The mark is lifted for the test and put back afterwards.
    """
    other = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    loop = ensure_event_loop(prefer_selector_loop=True)  # what pytest-jupyter's own fixture does
    try:
        yield loop
    finally:
        loop.close()
        asyncio._set_running_loop(other)


@pytest.fixture
def jp_server_config() -> Config:
    return server_config()


def launcher_processes() -> list[psutil.Process]:
    """The ``kernelstate serve`` processes that this process started (the launcher's among them)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "kernelstate.cli" in cmdline and "serve" in cmdline:
            found.append(child)
    return found


def _stop_launcher(proc: psutil.Process, timeout_s: float = 10.0) -> None:
    """SIGTERM, then wait for the exit without reaping the child.

    jupyter-server-proxy's supervisor reaps it: a child reaped here would
    reach the supervisor as exit code 255, which it answers with a restart.
    """
    try:
        cmdline = proc.cmdline()
        proc.terminate()
        deadline = time.monotonic() + timeout_s
        while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.status() != psutil.STATUS_ZOMBIE:
            proc.kill()
    except psutil.NoSuchProcess:
        return
    # jupyter-server-proxy leaves the folder it made for the socket behind.
    if "--unix-socket" in cmdline:
        socket_dir = Path(cmdline[cmdline.index("--unix-socket") + 1]).parent
        if socket_dir.name.startswith("jupyter-server-proxy-"):
            shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture
def ks_launcher_config(jp_root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """A ``jp_server_config`` with jupyter-server-proxy loaded and the launcher serving ``jp_root_dir``."""
    from ..jupyter.proxy import DIR_ENV

    monkeypatch.setenv(DIR_ENV, str(jp_root_dir))
    before = {p.pid for p in launcher_processes()}
    yield server_config({"jpserver_extensions": {"kernelstate.jupyter": True, "jupyter_server_proxy": True,
                                                 "jupyter_server_terminals": False}})
    for proc in launcher_processes():
        if proc.pid not in before and proc.pid != os.getpid():
            _stop_launcher(proc)


@pytest.fixture
def ks_ext(jp_serverapp: Any, jp_asyncio_loop: Any, http_server_client: Any) -> Any:
    """The KernelstateApp of a server listening on ``jp_http_port``, its background tasks started
    (as the server's post-start hook does)."""
    app = jp_serverapp.extension_manager.extension_points["kernelstate"].app
    jp_asyncio_loop.run_until_complete(app._start_jupyter_server_extension(jp_serverapp))
    return app


async def login_cookie(base_url: str, token: str) -> str:
    """The login cookie (``name=value``) Jupyter sets for a token-authenticated request to ``base_url``."""
    response = await AsyncHTTPClient().fetch(HTTPRequest(base_url + "api/status",
                                                         headers={"Authorization": f"token {token}"}))
    cookies = [c.split(";")[0] for c in response.headers.get_list("Set-Cookie") if c.startswith("username-")]
    if not cookies:
        raise AssertionError(f"no login cookie in {response.headers!r}")
    return cookies[0]
