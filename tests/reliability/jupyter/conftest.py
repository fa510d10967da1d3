"""A real Jupyter server with the kernelstate extension (pytest-jupyter), for R9, R10, R12 and R15.

Skipped with a reason when the Jupyter extras are not installed.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("jupyter_server", reason="the Jupyter extension tests need kernelstate[jupyter]")
pytest.importorskip("pytest_jupyter", reason="the Jupyter extension tests need pytest-jupyter")

from jupyter_core.utils import ensure_event_loop  # noqa: E402
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403  (pytest-jupyter's fixtures and async test runner)
from traitlets.config import Config  # noqa: E402


def server_config(serverapp: dict[str, Any] | None = None, **kernelstate: Any) -> Config:
    """The extension loaded (no kernel pool, fast kernel watch) plus extra ``ServerApp``/``KernelstateApp`` traits."""
    return Config({
        "ServerApp": {"jpserver_extensions": {"kernelstate.jupyter": True, "jupyter_server_terminals": False},
                      **(serverapp or {})},
        "KernelstateApp": {"kernel_pool_size": 0, "kernel_poll_interval_ms": 200, **kernelstate},
    })


@pytest.fixture
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's loop per test, even if another plugin left a loop marked running in this thread."""
    other = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    loop = ensure_event_loop(prefer_selector_loop=True)
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
    """The running extension app (its background tasks started, as the server's post-start hook does)."""
    app = jp_serverapp.extension_manager.extension_points["kernelstate"].app
    jp_asyncio_loop.run_until_complete(app._start_jupyter_server_extension(jp_serverapp))
    return app
