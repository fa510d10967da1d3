"""Test helpers for a real Jupyter server with the kernelstate extension (built on pytest-jupyter).

Import the fixtures into a ``conftest.py`` next to ``pytest_jupyter``'s::

    from pytest_jupyter.jupyter_server import *  # noqa: F403
    from kernelstate.testing.jupyter import jp_asyncio_loop, jp_server_config, ks_ext  # noqa: F401

``jp_server_config`` loads the extension with an empty kernel pool and a fast
kernel watch; override it with :func:`server_config` for other settings.
Needs ``kernelstate[jupyter,test]``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

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
