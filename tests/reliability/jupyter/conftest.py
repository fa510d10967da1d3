"""A real Jupyter server with the kernelstate extension (pytest-jupyter), for R9, R10, R12 and R15.

Skipped with a reason when the Jupyter extras are not installed.
"""
from __future__ import annotations

import pytest

pytest.importorskip("jupyter_server", reason="the Jupyter extension tests need kernelstate[jupyter]")
pytest.importorskip("pytest_jupyter", reason="the Jupyter extension tests need pytest-jupyter")

from pytest_jupyter.jupyter_server import *  # noqa: E402,F403  (pytest-jupyter's fixtures and async test runner)

from kernelstate.testing.jupyter import jp_asyncio_loop, jp_server_config, ks_ext, ks_launcher_config  # noqa: E402,F401  (fixtures)
