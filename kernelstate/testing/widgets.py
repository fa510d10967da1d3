"""A Jupyter widget frontend in Python, for tests of the widget transport (no browser).

:class:`WidgetFrontend` reads one kernel client's IOPub channel as a widget
manager does (``comm_open`` of widget models, their custom messages and
``comm_close``) and runs cells. :meth:`WidgetFrontend.view` opens a view of a
displayed :class:`~kernelstate.jupyter.widget.DocumentWidget`: a
:class:`~kernelstate.testing.client.ProtocolClient` whose frames travel as the
widget's custom messages, exactly as ``static/widget.js`` sends them.
"""
from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from .client import ProtocolClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class Model:
    """A widget model the kernel opened."""

    comm_id: str
    state: dict[str, Any]
    closed: bool = False
    inbox: list[tuple[dict[str, Any], list[bytes]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class WidgetFrontend:
    """One kernel client, read as a notebook frontend with a widget manager reads it."""

    def __init__(self, client: Any, timeout: float = 60.0) -> None:
        self.client = client
        self.timeout = timeout
        self.models: dict[str, Model] = {}
        self.views: dict[str, CommSocket] = {}
        self._runs: dict[str, tuple[list[dict[str, Any]], asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    def start(self) -> WidgetFrontend:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def _read(self) -> None:
        while True:
            msg = await self.client.get_iopub_msg()
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                self.models[content["comm_id"]] = Model(content["comm_id"], dict(content["data"].get("state", {})))
            elif kind == "comm_msg" and content["comm_id"] in self.models:
                data = content.get("data", {})
                if data.get("method") == "custom":
                    self._custom(self.models[content["comm_id"]], data["content"], [bytes(b) for b in msg.get("buffers", [])])
            elif kind == "comm_close" and content["comm_id"] in self.models:
                model = self.models[content["comm_id"]]
                model.closed = True
                model.changed.set()
            run = self._runs.get(msg["parent_header"].get("msg_id", ""))
            if run is not None:
                if kind in ("display_data", "execute_result", "error"):
                    run[0].append(msg)
                elif kind == "status" and content["execution_state"] == "idle" and not run[1].done():
                    run[1].set_result(None)

    def _custom(self, model: Model, content: dict[str, Any], buffers: list[bytes]) -> None:
        view = self.views.get(str(content.get("view")))
        if view is not None:
            view.received(content, buffers)
        else:
            model.inbox.append((content, buffers))
            model.changed.set()

    async def run(self, code: str, cell_id: str | None = None) -> list[dict[str, Any]]:
        """Execute a cell (as JupyterLab's cell ``cell_id``); its outputs; raises on an error."""
        msg = self.client.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        msg["metadata"]["cellId"] = cell_id or uuid.uuid4().hex
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outputs: list[dict[str, Any]] = []
        self._runs[msg["header"]["msg_id"]] = (outputs, done)
        self.client.shell_channel.send(msg)
        try:
            await asyncio.wait_for(done, self.timeout)
        finally:
            self._runs.pop(msg["header"]["msg_id"], None)
        errors = [m for m in outputs if m["msg_type"] == "error"]
        if errors:
            raise AssertionError("cell failed: " + "\n".join(errors[0]["content"]["traceback"]))
        return outputs

    def send(self, comm_id: str, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """A custom message from the front-end to the widget ``comm_id``."""
        msg = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": content}})
        self.client.session.send(self.client.shell_channel.socket, msg, buffers=buffers or [])

    async def reply(self, model: Model, kind: str, count: int = 1) -> list[tuple[dict[str, Any], list[bytes]]]:
        """The next ``count`` custom messages of ``kind`` the model received outside any view."""
        got: list[tuple[dict[str, Any], list[bytes]]] = []
        deadline = asyncio.get_running_loop().time() + self.timeout
        while len(got) < count:
            for item in [m for m in model.inbox if m[0].get("ks") == kind]:
                model.inbox.remove(item)
                got.append(item)
            if len(got) >= count:
                break
            model.changed.clear()
            await asyncio.wait_for(model.changed.wait(), max(deadline - asyncio.get_running_loop().time(), 0.01))
        return got

    async def view(self, model_id: str, send_ready: bool = True) -> ProtocolClient:
        """A connected view of the widget ``model_id`` (its Document pulled)."""
        view_id = f"view{next(self._ids)}"
        socket = CommSocket(self, model_id, view_id)
        self.views[view_id] = socket
        self.send(model_id, {"ks": "connect", "view": view_id})
        await asyncio.wait_for(socket.ready.wait(), self.timeout)
        tab = ProtocolClient("widget://" + view_id, timeout=self.timeout, send_ready=send_ready)
        tab.token = socket.token
        return await tab.start(socket)


def model_id(outputs: list[dict[str, Any]]) -> str:
    """The widget model a cell's outputs display."""
    for msg in outputs:
        view = msg["content"].get("data", {}).get(WIDGET_VIEW)
        if view is not None:
            return str(view["model_id"])
    raise AssertionError(f"no {WIDGET_VIEW} output in {[m['msg_type'] for m in outputs]}")


class CommSocket:
    """What a ProtocolClient needs of a WebSocket, over one view of a widget (as widget.js does it)."""

    def __init__(self, frontend: WidgetFrontend, comm_id: str, view_id: str) -> None:
        self.frontend = frontend
        self.comm_id = comm_id
        self.view_id = view_id
        self.token = ""
        self.ready = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._frames: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._out: list[Any] = []
        self._buffers: list[bytes] = []

    def received(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        kind = content.get("ks")
        if kind == "ready":
            self.token = str(content["token"])
            self.ready.set()
        elif kind == "frames":
            for item in content["frames"]:
                self._frames.put_nowait(item if isinstance(item, str) else buffers[item["buffer"]])
        elif kind == "closed":
            self.close_code, self.close_reason = content.get("code"), content.get("reason")
            self._frames.put_nowait(None)
            self.ready.set()

    async def read_message(self) -> str | bytes | None:
        return await self._frames.get()

    async def write_message(self, frame: str | bytes, binary: bool = False) -> None:
        if isinstance(frame, str):
            self._out.append(frame)
        else:
            self._out.append({"buffer": len(self._buffers)})
            self._buffers.append(bytes(frame))
        if len(self._out) == 1:
            # The frames written in one loop iteration (one Bokeh message) go as one comm message.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, buffers, self._out, self._buffers = self._out, self._buffers, [], []
        if frames:
            self.frontend.send(self.comm_id, {"ks": "frames", "view": self.view_id, "frames": frames}, buffers)

    def close(self) -> None:
        """The view leaves the page."""
        if self.close_code is None:
            self._flush()
            self.frontend.send(self.comm_id, {"ks": "close", "view": self.view_id})
            self.close_code, self.close_reason = 1000, "view removed"
            self._frames.put_nowait(None)
        self.frontend.views.pop(self.view_id, None)

