"""Scenario 6 (c), the widget transport: a cell's Document over the Jupyter widget comm, as a browser reaches it.

A user's kernel is started through the REST API; everything goes over the
kernel's channels WebSocket of the Jupyter server, as JupyterLab's widget
manager sends it (binary WebSocket messages when there are buffers):
``execute_request`` of a cell displaying an IntSlider and a Str pane -> the
``display_data`` naming the widget model -> custom message ``connect`` ->
``ready`` + ACK -> PULL-DOC -> five slider round trips, each a PATCH-DOC in a
custom message until the pane's echo comes back. BokehJS itself is not
fetched (a browser asks once per page; its transfer is timed apart, once).
"""
from __future__ import annotations

import asyncio
import json
import socket
import uuid
from time import perf_counter
from typing import Any

from .jupyter import CELL_CODE, TOKEN, _rest
from .protocol import find_models
from .scenarios import Sizes
from .servers import HOST, ServerProcess
from .stats import summarize

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class WidgetChannel:
    """One kernel's channels WebSocket, read as a widget manager reads it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex
        self.customs: asyncio.Queue[tuple[dict[str, Any], list[bytes]]] = asyncio.Queue()

    def _msg(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"channel": "shell", "parent_header": {}, "metadata": {}, "content": content,
                "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "bench",
                           "session": self.session, "version": "5.3", "date": ""}}

    async def _recv(self) -> dict[str, Any]:
        from jupyter_server.services.kernels.connection.base import deserialize_binary_message

        raw = await asyncio.wait_for(self.ws.recv(), 60)
        msg: dict[str, Any] = deserialize_binary_message(raw) if isinstance(raw, bytes) else json.loads(raw)
        if msg.get("msg_type", msg.get("header", {}).get("msg_type")) == "comm_msg":
            data = msg["content"].get("data", {})
            if data.get("method") == "custom":
                self.customs.put_nowait((data["content"], [bytes(b) for b in msg.get("buffers", [])]))
        return msg

    async def execute(self, code: str) -> str | None:
        """Run ``code``; the widget model id it displayed, if any."""
        msg = self._msg("execute_request", {"code": code, "silent": False, "store_history": False,
                                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        await self.ws.send(json.dumps({**msg, "buffers": []}))
        model: str | None = None
        while True:
            reply = await self._recv()
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind = reply["header"]["msg_type"]
            if kind in ("display_data", "execute_result") and WIDGET_VIEW in reply["content"].get("data", {}):
                model = reply["content"]["data"][WIDGET_VIEW]["model_id"]
            elif kind == "error":
                raise RuntimeError(f"the cell raised {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
            elif kind == "status" and reply["content"].get("execution_state") == "idle":
                return model

    async def custom(self, comm_id: str, content: dict[str, Any]) -> None:
        msg = self._msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": content}})
        await self.ws.send(json.dumps({**msg, "buffers": []}))

    async def until(self, predicate: Any) -> tuple[dict[str, Any], list[bytes]]:
        """Read until a custom message matching ``predicate`` arrives."""
        while True:
            while not self.customs.empty():
                item = self.customs.get_nowait()
                if predicate(item[0]):
                    return item
            await self._recv()


class WidgetView:
    """One view's Bokeh protocol over the widget comm (text frames only: the bench's messages have no buffers)."""

    def __init__(self, channel: WidgetChannel, comm_id: str, view: str) -> None:
        self.channel, self.comm_id, self.view = channel, comm_id, view
        self.ids = iter(range(1, 1 << 30))

    async def send(self, msgtype: str, content: dict[str, Any]) -> None:
        frames = [json.dumps({"msgid": str(next(self.ids)), "msgtype": msgtype}), "{}", json.dumps(content)]
        await self.channel.custom(self.comm_id, {"ks": "frames", "view": self.view, "frames": frames})

    async def message(self, predicate: Any) -> tuple[dict[str, Any], str]:
        """The next Bokeh message (header, content text) matching ``predicate``."""
        while True:
            content, _ = await self.channel.until(lambda c: c.get("view") == self.view and c.get("ks") == "frames")
            texts = [f for f in content["frames"] if isinstance(f, str)]
            for i in range(0, len(texts) - 2, 3):   # header, metadata, content per message
                header = json.loads(texts[i])
                if predicate(header, texts[i + 2]):
                    return header, texts[i + 2]


async def cell_widget(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """Cell display -> live Document over the widget comm, and slider round trips (see the module docstring)."""
    from websockets.asyncio.client import connect

    cells = 3 if sizes.setup_n1 < 20 else 10
    errors: list[str] = []
    display: list[float] = []
    live: list[float] = []
    rtts: list[float] = []
    bokehjs_ms: float | None = None
    kernel = await asyncio.to_thread(_rest, srv.port, "POST", "/api/kernels", {"name": "python3"})
    kernel_id = kernel["id"]
    try:
        uri = f"ws://{HOST}:{srv.port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
        async with connect(uri, max_size=None, open_timeout=60) as ws:
            # As a browser does: without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms per message.
            ws.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = WidgetChannel(ws)
            await channel.execute("import kernelstate")
            for i in range(cells):
                try:
                    c0 = perf_counter()
                    comm_id = await channel.execute(CELL_CODE)
                    if comm_id is None:
                        raise RuntimeError("the cell displayed no widget (is anywidget installed?)")
                    c1 = perf_counter()
                    if bokehjs_ms is None:   # once per page: timed apart, left out of this cell's display -> live
                        await channel.custom(comm_id, {"ks": "bokehjs"})
                        first, _ = await channel.until(lambda c: c.get("ks") == "bokehjs")
                        for _ in range(first["parts"] - 1):
                            await channel.until(lambda c: c.get("ks") == "bokehjs")
                        spent = perf_counter() - c1
                        bokehjs_ms = round(1000 * spent, 1)
                        c0, c1 = c0 + spent, c1 + spent
                    view = WidgetView(channel, comm_id, f"v{i}")
                    await channel.custom(comm_id, {"ks": "connect", "view": view.view})
                    await view.message(lambda h, c: h.get("msgtype") == "ACK")
                    await view.send("PULL-DOC-REQ", {})
                    _, doc = await view.message(lambda h, c: h.get("msgtype") == "PULL-DOC-REPLY")
                    c2 = perf_counter()
                    slider = next(mid for name, mid, attrs in find_models(json.loads(doc), [])
                                  if name.rsplit(".", 1)[-1].endswith("Slider") and "value" in attrs)
                    for k in range(5):
                        value = 1000 * (i + 1) + k
                        t0 = perf_counter()
                        await view.send("PATCH-DOC", {"events": [{"kind": "ModelChanged", "model": {"id": slider},
                                                                  "attr": "value", "new": value}]})
                        marker = f"value={value};"
                        await view.message(lambda h, c, m=marker: h.get("msgtype") == "PATCH-DOC" and m in c)
                        rtts.append(perf_counter() - t0)
                    await channel.custom(comm_id, {"ks": "close", "view": view.view})
                    display.append(c1 - c0)
                    live.append(c2 - c0)
                except Exception as exc:  # noqa: BLE001 - recorded in the results
                    errors.append(f"cell {i}: {type(exc).__name__}: {exc}"[:300])
                    break
    finally:
        await asyncio.to_thread(_rest, srv.port, "DELETE", f"/api/kernels/{kernel_id}")
    return {"cells": len(live), "display_ms": summarize(display), "live_ms": summarize(live),
            "slider_rtt_ms": summarize(rtts), "bokehjs_once_ms": bokehjs_ms,
            "errors": len(errors), "error_samples": errors}
