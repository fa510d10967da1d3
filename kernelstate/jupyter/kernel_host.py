"""KernelHost: the DocumentHost of a served app session whose Document lives in a kernel of its own.

The Jupyter extension's session manager creates one per app page (a kernel
per session, from the pool); browser connections are relayed to it over
``connect`` comms by :mod:`kernelstate.jupyter.relay`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..endpoint import CloseCode, Connection, Fragment
from ..errors import AppLoadError, KernelstateError
from ..loading import PageSpec
from ..session import RequestInfo
from .relay import CommChannel, KernelGoneError, KernelRelay, RelayedConnection

log = logging.getLogger(__name__)


ShutdownKernel = Callable[[str], Awaitable[None]]
KERNEL_DIED_REASON = "the app's kernel stopped: reload the page for a new session"


class KernelHost:
    """A served app session whose Document lives in a kernel of its own.

    Created by :meth:`create` (which runs the app in the kernel over an ``app``
    comm); browser connections are relayed over ``connect`` comms; destroying
    the host closes the app comm (the kernel destroys the session and runs its
    destroyed hooks) and then shuts the kernel down.
    """

    def __init__(self, session_id: str, kernel_id: str, relay: KernelRelay, control: CommChannel, page: PageSpec,
                 token: str, request: RequestInfo, request_reads: set[tuple[str, str | None]],
                 shutdown_kernel: ShutdownKernel, on_lost: Callable[[KernelHost, int, str], None]) -> None:
        self.session_id = session_id
        self.kernel_id = kernel_id
        self.relay = relay
        self.control = control
        self.page = page
        self.token = token
        self.request = request
        self._request_reads = request_reads
        self._shutdown_kernel = shutdown_kernel
        self._on_lost = on_lost
        self._connections: dict[Connection, RelayedConnection] = {}
        self._destroyed = False
        control.on_close = self._control_closed

    @classmethod
    async def create(cls, *, session_id: str, path: str, route: str, request: RequestInfo,
                     kernel_id: str, relay: KernelRelay, timeout_s: float, shutdown_kernel: ShutdownKernel,
                     on_lost: Callable[[KernelHost, int, str], None]) -> KernelHost:
        """Run the app for ``request`` in kernel ``kernel_id``; raises AppLoadError."""
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def on_msg(data: dict[str, Any], buffers: list[bytes]) -> None:
            if not reply.done():
                reply.set_result(data)

        def on_close(code: int, reason: str) -> None:
            if not reply.done():
                reply.set_exception(KernelGoneError(reason))
                reply.exception()

        control = relay.open_comm({"op": "app", "session_id": session_id, "path": path, "route": route,
                                           "request": request.to_json()}, on_msg, on_close)
        try:
            data = await asyncio.wait_for(asyncio.shield(reply), timeout_s)
        except (TimeoutError, KernelGoneError) as exc:
            control.close()
            await shutdown_kernel(kernel_id)
            why = f"no answer from its kernel within {timeout_s:.0f}s" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            raise AppLoadError(f"app {route} could not start: {why}", path=route) from None
        if data.get("op") != "ready":
            control.close()
            await shutdown_kernel(kernel_id)
            error = str(data.get("error") or "unknown error")
            raise AppLoadError(f"app {route} raised {error}", path=route,
                               cause=AppKernelError(error, str(data.get("traceback") or "")))
        reads = {(str(k), None if n is None else str(n)) for k, n in data.get("request_reads") or []}
        return cls(session_id, kernel_id, relay, control, PageSpec.from_json(data["page"]), str(data["token"]),
                   request, reads, shutdown_kernel, on_lost)

    # -- DocumentHost -------------------------------------------------------------------
    def populate(self) -> None:
        """The kernel builds the Document with the page (the kernel's own host is not lazy)."""

    def attach(self, conn: Connection) -> None:
        if self._destroyed or self.relay.stopped:
            conn.close(CloseCode.KERNEL_DIED, "the app's kernel is gone: reload the page")
            return
        self._connections[conn] = RelayedConnection(self.relay, conn, {"doc_id": self.session_id, "token": self.token},
                                                     KERNEL_DIED_REASON)

    def receive(self, conn: Connection, fragment: Fragment) -> float:
        relayed = self._connections.get(conn)
        if relayed is not None:
            relayed.from_browser(fragment)
        return 0.0

    def detach(self, conn: Connection) -> None:
        relayed = self._connections.pop(conn, None)
        if relayed is not None:
            relayed.close()

    def destroy(self, code: int = CloseCode.SESSION_EXPIRED, reason: str = "") -> None:
        if self._destroyed:
            return
        self._destroyed = True
        for conn, relayed in list(self._connections.items()):
            relayed.close()
            conn.close(code, reason or "session ended: reload the page to start a new one")
        self._connections.clear()
        self.control.close()
        asyncio.ensure_future(self._finish())

    async def _finish(self) -> None:
        # Let the kernel run the session's destroyed hooks before it is shut down.
        if not self.relay.stopped:
            try:
                await self.relay.roundtrip(5.0)
            except (TimeoutError, KernelGoneError):
                pass
        await self._shutdown_kernel(self.kernel_id)

    def _control_closed(self, code: int, reason: str) -> None:
        if not self._destroyed:
            self._on_lost(self, code, reason)

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    @property
    def request_reads(self) -> frozenset[tuple[str, str | None]]:
        return frozenset(self._request_reads)

    @property
    def session_key_func(self) -> None:
        """An app's own key function lives in its kernel and cannot key this server's cache."""
        return None

    @property
    def owner(self) -> str | None:
        """The Jupyter user the session was created for."""
        return self.request.user


class AppKernelError(KernelstateError):
    """An app raised in its kernel; ``traceback`` is the kernel-side traceback text."""

    def __init__(self, message: str, traceback: str) -> None:
        super().__init__(message)
        self.traceback = traceback
