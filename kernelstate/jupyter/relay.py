"""Server side of the relay: Bokeh protocol frames <-> comm messages to kernels.

- :class:`KernelRelay`: the extension's single client of one kernel. It owns
  one jupyter_client kernel client (shell, iopub, control), reads iopub and
  dispatches ``comm_msg``/``comm_close`` to the comms it opened, and watches
  the kernel: if the kernel dies, is restarted or is shut down, every comm is
  told (close code ``KERNEL_DIED``) and the relay stops. It sends nothing to a
  kernel but comm messages and ``kernel_info`` requests, and it never
  restarts or shuts down a kernel.
- :class:`RelayedConnection`: one browser connection bridged to one
  ``connect`` comm (frames grouped into whole Bokeh messages).
- :class:`~kernelstate.jupyter.kernel_host.KernelHost` (in its own module): the :class:`~kernelstate.host.DocumentHost` of a served
  app session whose Document lives in a kernel of its own.

Everything runs on the Jupyter server's event loop.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..endpoint import CloseCode, Connection, Fragment
from ..errors import KernelstateError
from ..limits import MessageLimits
from ..loops import SingleFlight, running_loop
from .wire import TARGET, MessageAssembler, WireError, close_code, pack_frames, unpack_frames

log = logging.getLogger(__name__)

MsgHandler = Callable[[dict[str, Any], list[bytes]], None]
CloseHandler = Callable[[int, str], None]


class KernelGoneError(KernelstateError, ConnectionError):
    """The kernel is not running (any more)."""


class CommChannel:
    """One comm this server opened in a kernel."""

    def __init__(self, relay: KernelRelay, comm_id: str, on_msg: MsgHandler, on_close: CloseHandler) -> None:
        self.relay = relay
        self.comm_id = comm_id
        self.on_msg = on_msg
        self.on_close = on_close
        self.closed = False

    def send(self, data: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        if self.closed:
            return
        self.relay.send_shell("comm_msg", {"comm_id": self.comm_id, "data": data}, buffers)

    def close(self, data: dict[str, Any] | None = None) -> None:
        """Close from this side (the kernel gets ``comm_close``)."""
        if self.closed:
            return
        self.closed = True
        self.relay.forget(self)
        self.relay.send_shell("comm_close", {"comm_id": self.comm_id, "data": data or {}})

    def closed_by_kernel(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.on_close(code, reason)


class KernelRelay:
    """One kernel client shared by every relayed comm of one kernel."""

    def __init__(self, kernel_id: str, kernel_manager: Any, poll_interval_s: float = 1.0,
                 idle_timeout_s: float = 60.0, message_limits: MessageLimits | None = None) -> None:
        self.kernel_id = kernel_id
        # Sent with every ``connect`` comm: the kernel applies them to that connection.
        self.message_limits = message_limits or MessageLimits()
        self.kernel_manager = kernel_manager
        self.poll_interval_s = poll_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.km = kernel_manager.get_kernel(kernel_id)
        self.client: Any = None
        self.stopped = False
        self._channels: dict[str, CommChannel] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pid: int | None = None
        self._idle_since: float | None = time.monotonic()
        self._on_stop: list[Callable[[KernelRelay], None]] = []
        self._iopub_seen = asyncio.Event()

    def __repr__(self) -> str:
        return f"<KernelRelay {self.kernel_id} comms={len(self._channels)}>"

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        if not await self._alive():
            raise KernelGoneError(f"kernel {self.kernel_id} is not running")
        self._pid = self._kernel_pid()
        self.client = self.km.client(session=own_session(self.km.session))
        self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_iopub()), loop.create_task(self._read_shell()),
                       loop.create_task(self._read_control()), loop.create_task(self._watch())]
        await self._wait_for_iopub(timeout_s)

    async def _wait_for_iopub(self, timeout_s: float) -> None:
        # iopub is PUB/SUB: a freshly connected subscriber misses what is published
        # before its subscription lands. Ask for kernel_info on the control channel
        # (answered even while a cell runs) until iopub shows the kernel's status.
        deadline = time.monotonic() + timeout_s
        while not self._iopub_seen.is_set():
            if self.stopped:
                raise KernelGoneError(f"kernel {self.kernel_id} went away while connecting")
            if time.monotonic() > deadline:
                self.stop()
                raise KernelGoneError(f"kernel {self.kernel_id} did not answer within {timeout_s:.0f}s")
            self.client.control_channel.send(self.client.session.msg("kernel_info_request"))
            try:
                await asyncio.wait_for(self._iopub_seen.wait(), 0.25)
            except TimeoutError:
                pass

    def on_stop(self, callback: Callable[[KernelRelay], None]) -> None:
        self._on_stop.append(callback)

    def stop(self, code: int = CloseCode.KERNEL_DIED, reason: str = "") -> None:
        """Close every comm channel with ``code`` (the kernel is gone) and disconnect."""
        if self.stopped:
            return
        self.stopped = True
        for channel in list(self._channels.values()):
            channel.closed_by_kernel(code, reason or "the kernel stopped")
        self._channels.clear()
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(KernelGoneError(reason or "the kernel stopped"))
                fut.exception()
        current = asyncio.current_task() if _loop_running() else None
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self.client is not None:
            try:
                self.client.stop_channels()
            except Exception:
                log.debug("stopping kernel client channels failed (kernel=%s)", self.kernel_id, exc_info=True)
        for callback in self._on_stop:
            callback(self)

    # -- comms --------------------------------------------------------------------------
    def open_comm(self, data: dict[str, Any], on_msg: MsgHandler, on_close: CloseHandler) -> CommChannel:
        if self.stopped:
            raise KernelGoneError(f"kernel {self.kernel_id} is not running")
        channel = CommChannel(self, uuid.uuid4().hex, on_msg, on_close)
        self._channels[channel.comm_id] = channel
        self._idle_since = None
        self.send_shell("comm_open", {"comm_id": channel.comm_id, "target_name": TARGET, "data": data})
        return channel

    def forget(self, channel: CommChannel) -> None:
        self._channels.pop(channel.comm_id, None)
        if not self._channels:
            self._idle_since = time.monotonic()

    @property
    def comm_count(self) -> int:
        return len(self._channels)

    def send_shell(self, msg_type: str, content: dict[str, Any], buffers: list[bytes] | None = None) -> str:
        if self.stopped or self.client is None:
            return ""
        msg = self.client.session.msg(msg_type, content)
        self.client.session.send(self.client.shell_channel.socket, msg, buffers=buffers or None)
        return str(msg["header"]["msg_id"])

    async def request(self, msg_type: str, content: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send a shell request and wait for its reply."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        msg_id = self.send_shell(msg_type, content)
        if not msg_id:
            raise KernelGoneError(f"kernel {self.kernel_id} is not running")
        self._replies[msg_id] = fut
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._replies.pop(msg_id, None)

    async def execute(self, code: str, timeout_s: float) -> dict[str, Any]:
        """Run fixed code (never anything taken from a request) and return the reply content."""
        reply = await self.request("execute_request", {
            "code": code, "silent": True, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True}, timeout_s)
        return dict(reply.get("content", {}))

    async def roundtrip(self, timeout_s: float = 5.0) -> None:
        """Wait until the kernel handled every shell message sent so far."""
        await self.request("kernel_info_request", {}, timeout_s)

    # -- readers ------------------------------------------------------------------------
    async def _read_iopub(self) -> None:
        while not self.stopped:
            try:
                msg = await self.client.get_iopub_msg()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopped:
                    return
                log.debug("iopub read failed (kernel=%s)", self.kernel_id, exc_info=True)
                await asyncio.sleep(0.1)
                continue
            self._iopub_seen.set()
            msg_type = msg.get("msg_type")
            if msg_type not in ("comm_msg", "comm_close"):
                continue
            content = msg.get("content") or {}
            channel = self._channels.get(content.get("comm_id", ""))
            if channel is None:
                continue
            try:
                if msg_type == "comm_msg":
                    channel.on_msg(content.get("data") or {}, list(msg.get("buffers") or []))
                else:
                    self.forget(channel)
                    code, reason = close_code(content.get("data"), CloseCode.SESSION_EXPIRED, "the kernel closed the connection")
                    channel.closed_by_kernel(code, reason)
            except Exception:
                log.exception("relaying a kernel message failed (kernel=%s)", self.kernel_id)

    async def _read_shell(self) -> None:
        while not self.stopped:
            try:
                msg = await self.client.get_shell_msg()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopped:
                    return
                await asyncio.sleep(0.1)
                continue
            fut = self._replies.get(msg.get("parent_header", {}).get("msg_id", ""))
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def _read_control(self) -> None:
        # kernel_info replies on control are only a nudge; drain them.
        while not self.stopped:
            try:
                await self.client.get_control_msg()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopped:
                    return
                await asyncio.sleep(0.1)

    async def _watch(self) -> None:
        while not self.stopped:
            await asyncio.sleep(self.poll_interval_s)
            if self.kernel_id not in self.kernel_manager:
                self.stop(CloseCode.KERNEL_DIED, "the kernel was shut down: re-run the cell")
            elif not await self._alive():
                log.warning("kernel %s died; closing its %d relayed connection(s)", self.kernel_id, len(self._channels))
                self.stop(CloseCode.KERNEL_DIED, "the kernel died: restart it and re-run the cell")
            elif self._kernel_pid() != self._pid:
                self.stop(CloseCode.KERNEL_DIED, "the kernel restarted: re-run the cell")
            elif self._idle_since is not None and time.monotonic() - self._idle_since > self.idle_timeout_s:
                self.stop(CloseCode.SESSION_EXPIRED, "idle")

    async def _alive(self) -> bool:
        try:
            return bool(await self.km.is_alive())
        except Exception:
            return False

    def _kernel_pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        return pid if isinstance(pid, int) else None


def own_session(session: Any) -> Any:
    """A copy of a kernel manager's Session with a session id of its own.

    The shell channel's ZMQ identity is the session id: two clients sharing
    one would receive each other's replies.
    """
    clone = session.clone()
    clone.session = str(uuid.uuid4())
    return clone


def _loop_running() -> bool:
    return running_loop() is not None


class RelayRegistry:
    """At most one :class:`KernelRelay` per kernel."""

    def __init__(self, kernel_manager: Any, poll_interval_s: float = 1.0,
                 message_limits: MessageLimits | None = None) -> None:
        self.kernel_manager = kernel_manager
        self.poll_interval_s = poll_interval_s
        self.message_limits = message_limits or MessageLimits()
        self._relays: dict[str, KernelRelay] = {}
        self._starting: SingleFlight[str, KernelRelay] = SingleFlight()

    def __len__(self) -> int:
        return len(self._relays)

    def relays(self) -> list[KernelRelay]:
        return list(self._relays.values())

    async def get(self, kernel_id: str) -> KernelRelay:
        relay = self._relays.get(kernel_id)
        if relay is not None and not relay.stopped:
            return relay
        if self._starting.running(kernel_id) is None and kernel_id not in self.kernel_manager:
            raise KernelGoneError(f"no kernel {kernel_id}")
        return await self._starting.run(kernel_id, lambda: self._start(kernel_id))

    async def _start(self, kernel_id: str) -> KernelRelay:
        relay = KernelRelay(kernel_id, self.kernel_manager, self.poll_interval_s, message_limits=self.message_limits)
        relay.on_stop(self._stopped)
        await relay.start()
        self._relays[kernel_id] = relay
        return relay

    def _stopped(self, relay: KernelRelay) -> None:
        if self._relays.get(relay.kernel_id) is relay:
            del self._relays[relay.kernel_id]

    def stop_all(self) -> None:
        for relay in list(self._relays.values()):
            relay.stop(CloseCode.SERVER_STOPPING, "the Jupyter server is stopping")


class RelayedConnection:
    """One browser connection to a kernel-hosted Document, over one ``connect`` comm."""

    def __init__(self, relay: KernelRelay, conn: Connection, connect_data: dict[str, Any],
                 kernel_died_reason: str | None = None) -> None:
        self.conn = conn
        self.closed = False
        self._kernel_died_reason = kernel_died_reason
        self._assembler = MessageAssembler()
        self.channel = relay.open_comm({"op": "connect", **connect_data, "limits": relay.message_limits.to_json()},
                                       self._from_kernel, self._kernel_closed)

    def from_browser(self, fragment: Fragment) -> None:
        if self.closed:
            return
        try:
            frames = self._assembler.feed(fragment)
        except WireError as exc:
            log.warning("closing a relayed connection: %s", exc)
            self.close()
            self.conn.close(CloseCode.MALFORMED, f"malformed message: {exc}"[:120])
            return
        if frames is not None:
            data, buffers = pack_frames(frames)
            self.channel.send(data, buffers)

    def _from_kernel(self, data: dict[str, Any], buffers: list[bytes]) -> None:
        try:
            frames = unpack_frames(data, buffers)
        except WireError as exc:
            log.warning("dropping a malformed kernel message: %s", exc)
            return
        self.conn.send_frames(frames)

    def _kernel_closed(self, code: int, reason: str) -> None:
        self.closed = True
        if code == CloseCode.KERNEL_DIED and self._kernel_died_reason:
            reason = self._kernel_died_reason
        self.conn.close(code, reason)

    def close(self) -> None:
        """The browser went away: close the comm (the kernel detaches the connection)."""
        if not self.closed:
            self.closed = True
            self.channel.close()
