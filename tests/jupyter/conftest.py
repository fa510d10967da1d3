"""A real Jupyter server with the kernelstate extension, and real kernels.

Fixtures come from pytest-jupyter (``jp_serverapp``, ``jp_fetch``,
``jp_ws_fetch``, ...). ``jp_server_config`` loads the extension with an empty
kernel pool (tests that serve apps ask for one) and a fast kernel watch.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's fixtures and async test runner)

from jupyter_helpers import KernelDriver

from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.jupyter import jp_asyncio_loop, jp_server_config, ks_ext, ks_launcher_config  # noqa: F401  (fixtures)


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
