"""A pool of pre-started kernels for served app sessions.

Each app session gets a kernel of its own, taken from the pool (or started on
demand when the pool is empty or the app needs another kernelspec); the pool
refills in the background. Pool kernels are started by the Jupyter server's
kernel manager with ``KERNELSTATE_APP_KERNEL=1`` in their environment and
without automatic restart (a session is never silently moved to a restarted
kernel), and are prepared with a fixed bootstrap (import kernelstate, register
its comm target), so the first request only has to run the app.

Only kernels this pool started are ever shut down by it.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from ..errors import KernelstateError
from .relay import KernelGoneError, RelayRegistry
from .wire import APP_KERNEL_ENV

log = logging.getLogger(__name__)

# Fixed code: nothing from any request is ever added to it.
BOOTSTRAP = (
    "import kernelstate.jupyter.comm as _kernelstate_comm\n"
    "_kernelstate_comm.register_target()\n"
    "import kernelstate.components.widgets, kernelstate.components.layout, kernelstate.components.pane\n"
    "del _kernelstate_comm\n"
)


class KernelStartError(KernelstateError, RuntimeError):
    """A kernel for an app could not be started or prepared."""


class KernelPool:
    """Pre-started, prepared kernels of one default kernelspec, ``size`` of them."""

    def __init__(self, kernel_manager: Any, relays: RelayRegistry, size: int, default_kernel_name: Callable[[], str],
                 startup_timeout_s: float = 60.0) -> None:
        self.kernel_manager = kernel_manager
        self.relays = relays
        self.size = size
        self._default_kernel_name = default_kernel_name
        self.startup_timeout_s = startup_timeout_s
        self._ready: list[tuple[str, str]] = []          # (kernel name, kernel id)
        self._filling: set[asyncio.Task[None]] = set()
        self.started: set[str] = set()                   # every kernel id this pool started and not shut down
        self.closed = False

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def fill(self) -> None:
        """Start kernels in the background until ``size`` are ready or starting."""
        if self.closed:
            return
        missing = self.size - len(self._ready) - len(self._filling)
        for _ in range(max(0, missing)):
            task = asyncio.get_running_loop().create_task(self._fill_one(self._default_kernel_name()))
            self._filling.add(task)
            task.add_done_callback(self._filling.discard)

    async def _fill_one(self, kernel_name: str) -> None:
        try:
            kernel_id = await self._start(kernel_name)
        except Exception as exc:
            log.error("could not pre-start a %s kernel for kernelstate apps: %s", kernel_name, exc)
            return
        if self.closed:
            await self.shutdown(kernel_id)
            return
        self._ready.append((kernel_name, kernel_id))

    async def acquire(self, kernel_name: str) -> str:
        """A prepared kernel of ``kernel_name`` for one session (the caller owns it)."""
        while True:
            index = next((i for i, (name, _) in enumerate(self._ready) if name == kernel_name), None)
            if index is None:
                break
            _, kernel_id = self._ready.pop(index)
            if kernel_id in self.kernel_manager and await self.kernel_manager.get_kernel(kernel_id).is_alive():
                self.fill()
                return kernel_id
            await self.shutdown(kernel_id)
        kernel_id = await self._start(kernel_name)
        self.fill()
        return kernel_id

    async def _start(self, kernel_name: str) -> str:
        env = {**os.environ, APP_KERNEL_ENV: "1"}
        try:
            kernel_id = await self.kernel_manager.start_kernel(kernel_name=kernel_name, path="", env=env)
        except Exception as exc:
            raise KernelStartError(f"could not start a {kernel_name!r} kernel: {type(exc).__name__}: {exc}") from exc
        self.started.add(kernel_id)
        km = self.kernel_manager.get_kernel(kernel_id)
        km.stop_restarter()  # a dead app kernel ends its session; it is never replaced behind its back
        km.autorestart = False
        try:
            relay = await self.relays.get(kernel_id)
            reply = await relay.execute(BOOTSTRAP, self.startup_timeout_s)
        except (TimeoutError, KernelGoneError) as exc:
            await self.shutdown(kernel_id)
            raise KernelStartError(f"the {kernel_name!r} kernel did not get ready: {exc or 'timeout'}") from exc
        if reply.get("status") != "ok":
            await self.shutdown(kernel_id)
            raise KernelStartError(
                f"kernelstate is not importable in the {kernel_name!r} kernel: "
                f"{reply.get('ename', '')}: {reply.get('evalue', '')}; install kernelstate in that kernel's environment")
        log.info("kernelstate app kernel %s (%s) ready", kernel_id, kernel_name)
        return str(kernel_id)

    async def shutdown(self, kernel_id: str) -> None:
        """Shut down a kernel this pool started (any other id is ignored)."""
        if kernel_id not in self.started:
            return
        self.started.discard(kernel_id)
        self._ready = [(n, k) for n, k in self._ready if k != kernel_id]
        if kernel_id not in self.kernel_manager:
            return
        try:
            await self.kernel_manager.shutdown_kernel(kernel_id, now=False)
        except Exception:
            log.warning("shutting down app kernel %s failed", kernel_id, exc_info=True)

    async def close(self) -> None:
        """Shut down every kernel this pool started (idle or still serving)."""
        self.closed = True
        for task in list(self._filling):
            task.cancel()
        await asyncio.gather(*(self.shutdown(k) for k in list(self.started)), return_exceptions=True)
