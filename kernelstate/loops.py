"""The one way kernelstate asks "which asyncio loop runs here, if any?"."""
from __future__ import annotations

import asyncio


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (``asyncio.get_running_loop`` raises instead)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
