"""Testing helpers, public: ProtocolClient, FakeClock, captured_log, and pytest fixtures (``ks_*``).

The fixtures are in :mod:`kernelstate.testing.plugin`; enable them with
``pytest_plugins = ["kernelstate.testing.plugin"]``.
"""
from ..errors import ProtocolError
from .client import ClosedError, ProtocolClient, session_id_from_token, token_from_html
from .clock import FakeClock
from .logs import LogCapture, captured_log

__all__ = ["ClosedError", "FakeClock", "LogCapture", "ProtocolClient", "ProtocolError", "captured_log",
           "session_id_from_token", "token_from_html"]
