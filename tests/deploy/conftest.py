from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: installs or launches a whole deployment (Binder-like venv, JupyterHub)")
