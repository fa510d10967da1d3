from __future__ import annotations

pytest_plugins = ["kernelstate.testing.plugin"]
