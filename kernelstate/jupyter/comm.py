"""Kernel side: Documents hosted in this kernel, served to browsers over comms.

The server extension relays each browser WebSocket to the kernel as one comm
on the ``kernelstate`` target (wire format: :mod:`kernelstate.jupyter.wire`).
Here a :class:`KernelDocuments` registry owns every hosted Document:

- a *cell document* is created when a component is displayed in a cell
  (``display.mimebundle``); it lives until its cell is re-run or deleted, the
  cap on cell documents evicts it, or the kernel exits;
- an *app session* is created when the extension opens an ``app`` comm in a
  kernel it started for a served app; it lives until that comm closes.

A browser connection (``connect`` comm) must present the token the kernel
issued for the document (in the cell's output, or to the extension for an
app session).

Threading: ipykernel dispatches comm messages on the kernel's main thread,
inside its asyncio loop; everything here runs there. Outgoing frames are
batched per loop iteration into one comm message per connection, and at
most ``burst`` messages go out per ``window_s``: an interaction's reply goes
out at once, while a chatty Document is held to 50 messages/s, well under
the Jupyter server's IOPub rate limits.
"""
from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import os
import re
import time
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..context import activate
from ..endpoint import CloseCode, DocumentEndpoint, Fragment
from ..errors import AppLoadError, ConfigError
from ..limits import MessageLimits
from ..loading import FileApp
from ..loops import running_loop
from ..session import RequestInfo, Session, hooks, registry
from ..web.tokens import Signer
from .wire import APP_KERNEL_ENV, TARGET, WireError, close_data, pack_frames, unpack_frames

log = logging.getLogger(__name__)

CELL_TOKEN_LIFETIME_S = 30 * 24 * 3600
APP_TOKEN_LIFETIME_S = 10 * 365 * 24 * 3600
_KERNEL_FILE = re.compile(r"kernel-([0-9A-Za-z_-]{1,64})\.json$")


class CellSession(Session):
    """The session of one Document displayed in a notebook cell."""

    kind = "cell"


@dataclass
class HostedDocument:
    session: Session
    endpoint: DocumentEndpoint
    token: str
    kind: str                      # "cell" or "app"
    cell_id: str | None = None
    connections: list[CommConnection] = field(default_factory=list)
    last_used: float = field(default_factory=time.monotonic)

    @property
    def doc_id(self) -> str:
        return self.session.id


def kernel_id() -> str | None:
    """This kernel's id in the Jupyter server that started it, or None.

    Jupyter names connection files ``kernel-<kernel id>.json``.
    """
    try:
        from ipykernel.connect import get_connection_file

        path = get_connection_file()
    except Exception:
        return None
    m = _KERNEL_FILE.search(os.path.basename(path))
    return m.group(1) if m else None


class CommConnection:
    """One relayed browser connection: a :class:`~kernelstate.endpoint.Connection` over a comm."""

    #: at most ``burst`` comm messages per ``window_s``: a run of interactions (OK + patch
    #: each; five slider moves in a row) goes out at once, sustained traffic is held to
    #: burst/window (50/s), far under Jupyter's IOPub message rate limit (1000/s over 3 s).
    burst = 20
    window_s = 0.4

    def __init__(self, comm: Any, hosted: HostedDocument) -> None:
        self.comm = comm
        self.hosted = hosted
        self.closed = False
        self._outbox: list[Fragment] = []
        self._scheduled = False
        self._recent: collections.deque[float] = collections.deque(maxlen=self.burst)
        self._lock = asyncio.Lock()
        comm.on_msg(self._on_msg)
        comm.on_close(self._on_close)

    # -- Connection protocol ----------------------------------------------------------
    def send_frames(self, frames: Sequence[Fragment]) -> None:
        if self.closed:
            return
        self._outbox.extend(frames)
        if self._scheduled:
            return
        self._scheduled = True
        loop = self.hosted.session.event_loop() or running_loop()
        if loop is None:
            self._flush()
            return
        delay = 0.0
        if len(self._recent) == self.burst:
            delay = self._recent[0] + self.window_s - time.monotonic()
        if delay > 0:
            loop.call_soon_threadsafe(loop.call_later, delay, self._flush)
        else:
            loop.call_soon_threadsafe(self._flush)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self._flush()
        self.closed = True
        self._detach()
        try:
            self.comm.close(close_data(code, reason))
        except Exception:
            log.debug("closing a comm failed (doc=%s)", self.hosted.doc_id, exc_info=True)

    # -- internals --------------------------------------------------------------------
    def _flush(self) -> None:
        self._scheduled = False
        frames, self._outbox = self._outbox, []
        if not frames or self.closed:
            return
        self._recent.append(time.monotonic())
        data, buffers = pack_frames(frames)
        self.comm.send(data, buffers=buffers)

    def _on_msg(self, msg: dict[str, Any]) -> None:
        try:
            frames = unpack_frames(msg["content"]["data"], msg.get("buffers") or [])
        except (WireError, KeyError, TypeError) as exc:
            log.warning("closing a relayed connection: %s (doc=%s)", exc, self.hosted.doc_id)
            self.close(CloseCode.MALFORMED, f"malformed relay message: {exc}")
            return
        self.hosted.last_used = time.monotonic()
        asyncio.ensure_future(self._feed(frames))

    async def _feed(self, frames: list[Fragment]) -> None:
        # One lock per connection keeps frames in order across comm messages.
        async with self._lock:
            for frame in frames:
                if self.closed:
                    return
                pause = self.hosted.endpoint.receive(self, frame)
                if pause:
                    await asyncio.sleep(pause)

    def _on_close(self, msg: dict[str, Any]) -> None:
        self.closed = True
        self._detach()

    def _detach(self) -> None:
        hosted = self.hosted
        hosted.endpoint.detach(self)
        if self in hosted.connections:
            hosted.connections.remove(self)
        if not hosted.connections:
            hosted.session.mark_disconnected()


class KernelDocuments:
    """Every Document this kernel hosts for the server extension, by document id."""

    def __init__(self, max_cell_documents: int = 200) -> None:
        self.max_cell_documents = max_cell_documents
        self.signer = Signer.create(None)
        self._docs: OrderedDict[str, HostedDocument] = OrderedDict()
        self._registered = False
        self._app_started = False

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> HostedDocument | None:
        return self._docs.get(doc_id)

    def documents(self) -> list[HostedDocument]:
        return list(self._docs.values())

    # -- registration -----------------------------------------------------------------
    def register(self) -> None:
        """Register the comm target (and the cell re-run hook) once per kernel."""
        if self._registered:
            return
        import comm

        from ..coroutines import install as install_coroutine_callbacks

        install_coroutine_callbacks()
        comm.get_comm_manager().register_target(TARGET, self._open)
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is not None:
            shell.events.register("pre_run_cell", self._pre_run_cell)
        self._registered = True

    # -- cell documents ---------------------------------------------------------------
    def host_component(self, component: Any) -> HostedDocument:
        """A new Document showing ``component``, hosted for the current cell."""
        self.register()
        doc_id = self.signer.new_session_id()
        session = CellSession(RequestInfo(), session_id=doc_id, loop=running_loop())
        document = session.document
        assert document is not None
        # The output shows its own banner and reconnect button; BokehJS's page-level
        # notifications and automatic reconnects would fight with them.
        document.config.reconnect_session = False
        document.config.notify_connection_status = False
        with activate(session):
            document.add_root(component.get_model(document, session))
        registry.add(session, "cell")
        hosted = HostedDocument(session, DocumentEndpoint(session), self.signer.token(doc_id, CELL_TOKEN_LIFETIME_S),
                                "cell", _current_cell_id())
        self._docs[doc_id] = hosted
        self._evict()
        return hosted

    def _evict(self) -> None:
        cells = [h for h in self._docs.values() if h.kind == "cell"]
        excess = len(cells) - self.max_cell_documents
        if excess <= 0:
            return
        # Least recently used first, unconnected before connected.
        for hosted in sorted(cells, key=lambda h: (bool(h.connections), h.last_used))[:excess]:
            self.destroy(hosted.doc_id, CloseCode.SESSION_EXPIRED,
                         "this output was dropped (too many live outputs in the kernel): re-run the cell")

    def _pre_run_cell(self, info: Any) -> None:
        gone = set(_deleted_cell_ids())
        cell_id = getattr(info, "cell_id", None)
        if cell_id:
            gone.add(cell_id)
        for hosted in [h for h in self._docs.values() if h.cell_id in gone and h.kind == "cell"]:
            self.destroy(hosted.doc_id, CloseCode.SESSION_EXPIRED, "the cell was re-run or deleted")

    def destroy(self, doc_id: str, code: int = CloseCode.SESSION_EXPIRED, reason: str = "") -> bool:
        hosted = self._docs.pop(doc_id, None)
        if hosted is None:
            return False
        hosted.endpoint.close_all(code, reason or "the document was closed")
        hosted.session.destroy()
        return True

    # -- the comm target ----------------------------------------------------------------
    def _open(self, comm: Any, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data") or {}
        op = data.get("op") if isinstance(data, dict) else None
        if op == "connect":
            self._connect(comm, data)
        elif op == "app":
            self._start_app(comm, data)
        else:
            comm.close(close_data(CloseCode.FORBIDDEN, f"unknown kernelstate comm op {str(op)[:40]!r}"))

    def _connect(self, comm: Any, data: dict[str, Any]) -> None:
        doc_id, token = data.get("doc_id"), data.get("token")
        hosted = self._docs.get(doc_id) if isinstance(doc_id, str) else None
        if hosted is None or hosted.session.destroyed:
            comm.close(close_data(CloseCode.SESSION_EXPIRED,
                                  "this output is no longer live in the kernel (restarted or re-run?): re-run the cell"))
            return
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), hosted.token.encode()):
            log.warning("refused a relayed connection with a wrong token (doc=%s)", doc_id)
            comm.close(close_data(CloseCode.FORBIDDEN, "invalid document token"))
            return
        try:
            limits = MessageLimits.from_mapping(data["limits"]) if "limits" in data else None
        except ConfigError as exc:
            comm.close(close_data(CloseCode.MALFORMED, f"bad message limits: {exc}"[:120]))
            return
        conn = CommConnection(comm, hosted)
        hosted.connections.append(conn)
        hosted.last_used = time.monotonic()
        hosted.endpoint.attach(conn, limits)
        hosted.session.mark_reconnected()

    # -- served app sessions ----------------------------------------------------------------
    def _start_app(self, comm: Any, data: dict[str, Any]) -> None:
        if os.environ.get(APP_KERNEL_ENV) != "1":
            comm.close(close_data(CloseCode.FORBIDDEN, "this kernel was not started to serve an app"))
            return
        if self._app_started:
            comm.close(close_data(CloseCode.FORBIDDEN, "this kernel already serves an app session"))
            return
        self._app_started = True
        asyncio.ensure_future(self._run_app(comm, data))

    async def _run_app(self, comm: Any, data: dict[str, Any]) -> None:
        try:
            await self._build_app(comm, data)
        except Exception as exc:
            log.exception("starting an app session failed")
            comm.send({"op": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-8000:]})
            comm.close(close_data(CloseCode.SESSION_EXPIRED, "the app failed"))

    async def _build_app(self, comm: Any, data: dict[str, Any]) -> None:
        try:
            session_id = str(data["session_id"])
            path = Path(str(data["path"]))
            route = str(data.get("route") or "/" + path.stem)
            request = RequestInfo.from_json(data.get("request") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            comm.send({"op": "error", "error": f"bad app request: {exc}"})
            comm.close(close_data(CloseCode.MALFORMED, "bad app request"))
            return
        session = Session(request, session_id=session_id, loop=asyncio.get_running_loop())
        del request  # the session's RecordedRequest is its only holder from here on
        registry.add(session, route)
        hooks.run_created(session)
        try:
            page = await FileApp(path, route).build(session)
        except (AppLoadError, OSError, SyntaxError) as exc:
            session.destroy()
            cause = getattr(exc, "cause", None) or exc
            log.error("app %s failed: %s: %s", route, type(cause).__name__, cause)
            comm.send({"op": "error", "error": f"{type(cause).__name__}: {cause}",
                       "traceback": "".join(traceback.format_exception(cause))[-8000:]})
            comm.close(close_data(CloseCode.SESSION_EXPIRED, "the app failed"))
            return
        hosted = HostedDocument(session, DocumentEndpoint(session), self.signer.token(session_id, APP_TOKEN_LIFETIME_S), "app")
        self._docs[session_id] = hosted
        comm.on_close(lambda msg: self.destroy(session_id, CloseCode.SESSION_EXPIRED, "session ended: reload the page"))
        reads = sorted(([kind, name] for kind, name in session.request_reads), key=lambda r: (r[0], r[1] or ""))
        comm.send({"op": "ready", "page": page.to_json(), "token": hosted.token, "request_reads": reads})


def _current_cell_id() -> str | None:
    parent = _parent_header()
    cell_id = parent.get("metadata", {}).get("cellId") if isinstance(parent, dict) else None
    return cell_id if isinstance(cell_id, str) else None


def _deleted_cell_ids() -> list[str]:
    parent = _parent_header()
    deleted = parent.get("metadata", {}).get("deletedCells") if isinstance(parent, dict) else None
    return [c for c in deleted if isinstance(c, str)] if isinstance(deleted, list) else []


def _parent_header() -> dict[str, Any]:
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        if kernel is None:
            return {}
        parent = kernel.get_parent("shell") if hasattr(kernel, "get_parent") else {}
        return parent if isinstance(parent, dict) else {}
    except Exception:
        log.debug("could not read the parent message header", exc_info=True)
        return {}


_documents: list[KernelDocuments] = []


def kernel_documents() -> KernelDocuments:
    """The process-wide registry of Documents this kernel hosts (created on first use)."""
    if not _documents:
        _documents.append(KernelDocuments())
    return _documents[0]


def register_target() -> None:
    """Register the ``kernelstate`` comm target (the extension runs this in app kernels)."""
    kernel_documents().register()
