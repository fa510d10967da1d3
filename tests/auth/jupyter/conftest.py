"""A real Jupyter server with the kernelstate extension (pytest-jupyter's fixtures), for the user in app sessions."""
from __future__ import annotations

from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's fixtures and async test runner)

from kernelstate.testing.jupyter import jp_asyncio_loop, jp_server_config, ks_ext  # noqa: F401  (fixtures)
