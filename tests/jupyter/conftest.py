"""A real Jupyter server with the kernelstate extension, and real kernels.

Fixtures come from pytest-jupyter (``jp_serverapp``, ``jp_fetch``,
``jp_ws_fetch``, ...). ``jp_server_config`` loads the extension with an empty
kernel pool (tests that serve apps ask for one) and a fast kernel watch.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_core.utils import ensure_event_loop
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's fixtures and async test runner)
from traitlets.config import Config

from jupyter_helpers import KernelDriver, server_config

from kernelstate.testing.client import ProtocolClient


@pytest.fixture
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's event loop per test, usable even while Playwright's sync API is alive.

    ``tests/browser`` keeps one Playwright session open, and between calls its
    sync API marks its own loop as this thread's running loop; pytest-jupyter's
    ``run_until_complete`` would then refuse to run. The mark is lifted for the
    test and put back afterwards.
    """
    playwright_loop = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    loop = ensure_event_loop(prefer_selector_loop=True)  # what pytest-jupyter's own fixture does
    try:
        yield loop
    finally:
        loop.close()
        asyncio._set_running_loop(playwright_loop)


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


@pytest.fixture
def user_kernel(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Iterator[KernelDriver]:
    """A user's kernel, started through the REST API like JupyterLab does."""

    async def start() -> KernelDriver:
        r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
        kernel_id = json.loads(r.body)["id"]
        return await KernelDriver(kernel_id, jp_serverapp.kernel_manager.get_kernel(kernel_id)).ready()

    driver = jp_asyncio_loop.run_until_complete(start())
    yield driver
    driver.stop()


@pytest.fixture
def relay_client(jp_serverapp: Any, jp_http_port: int, jp_auth_header: dict[str, str]) -> Callable[..., ProtocolClient]:
    """``relay_client(output)``: a BokehJS-like client of a cell output (``doc_output(...)``), over the relay."""

    def make(out: dict[str, Any], view: str = "v1", headers: dict[str, str] | None = None,
             origin: str | None = None, token: str | None = None) -> ProtocolClient:
        base = jp_serverapp.base_url
        url = f"ws://localhost:{jp_http_port}{base}kernelstate/kernels/{out['kernel_id']}/docs/{out['doc_id']}/{view}/ws"
        client = ProtocolClient(url, headers=jp_auth_header if headers is None else headers, origin=origin,
                                ws_url=url, timeout=20)
        client.token = token or out["token"]
        return client

    return make
