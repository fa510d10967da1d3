"""One small driver interface over every host, so the behaviour spec is written once.

A *host* is where a kernelstate Document lives and how a browser reaches it:

- ``standalone``: ``kernelstate serve`` (a real subprocess); a page request is a new session;
- ``jupyter-app``: the Jupyter server extension serving an app file; each session runs in a
  kernel of its own, relayed;
- ``cell``: a component displayed in a notebook cell of a real kernel; each display is a new
  document (session), reached over the extension's relay;
- ``widget``: the same cells in the same kernel, reached over the Jupyter widget comm
  (:mod:`kernelstate.jupyter.widget`), as a frontend with a widget manager reaches them.

A driver opens a tab (:class:`~kernelstate.testing.client.ProtocolClient`) on a new
session of an app, reconnects to the same session, and ends a session the way its host
ends it. Reading and setting model properties and the session id are the tab's own
(``tab.find``, ``tab.set``, ``tab.session_id``).
"""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernelstate.jupyter.wire import MIME_TYPE
from kernelstate.testing.client import ProtocolClient
from kernelstate.testing.widgets import CommSocket, WidgetFrontend, model_id

TIMEOUT_S = 60.0
HOSTS = ["standalone", "jupyter-app", "cell", "widget"]


class HostDriver(Protocol):
    """What the behaviour spec needs from a host."""

    name: str

    async def open(self, app: str, args: dict[str, str] | None = None, *, connect: bool = True,
                   send_ready: bool = True) -> ProtocolClient:
        """A tab on a new session of ``app`` (a file in tests/hosts/apps, without ``.py``).

        With ``connect=False`` only the page is fetched (its token names the session);
        with ``send_ready=False`` the tab connects but does not report the page rendered.
        """

    async def reconnect(self, tab: ProtocolClient) -> ProtocolClient:
        """A new connection to ``tab``'s session (``tab`` itself may be closed)."""

    async def end_session(self, tab: ProtocolClient) -> None:
        """Close ``tab`` and make its host end the session as it does for a user who leaves."""

    async def aclose(self) -> None:
        """Close every tab and connection the driver opened (call it on the loop that used them)."""


class ServedDriver:
    """A host that serves app files at URLs: a page request creates the session."""

    def __init__(self, name: str, app_url: str, suffix: str, headers: dict[str, str]) -> None:
        self.name = name
        self.app_url = app_url       # apps are at app_url + name + suffix
        self.suffix = suffix
        self.headers = headers
        self.tabs: list[ProtocolClient] = []

    async def open(self, app: str, args: dict[str, str] | None = None, *, connect: bool = True,
                   send_ready: bool = True) -> ProtocolClient:
        url = self.app_url + app + self.suffix + (f"?{urlencode(args)}" if args else "")
        tab = ProtocolClient(url, headers=self.headers, timeout=TIMEOUT_S, send_ready=send_ready)
        self.tabs.append(tab)
        await tab.fetch_page()
        if connect:
            await tab.connect()
        return tab

    async def reconnect(self, tab: ProtocolClient) -> ProtocolClient:
        again = ProtocolClient(tab.url, headers=self.headers, timeout=TIMEOUT_S)
        again.token = tab.token
        self.tabs.append(again)
        return await again.connect()

    async def end_session(self, tab: ProtocolClient) -> None:
        # The session outlives its last connection by the host's unused-session lifetime.
        await tab.close()

    async def aclose(self) -> None:
        for tab in self.tabs:
            await tab.close()


class KernelChannel:
    """A notebook frontend's kernel connection over the Jupyter server's channels WebSocket."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(cls, base_url: str, kernel_id: str, headers: dict[str, str]) -> KernelChannel:
        url = base_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        return cls(await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=TIMEOUT_S)))

    async def execute(self, code: str, cell_id: str) -> list[dict[str, Any]]:
        """Run ``code`` as the cell ``cell_id`` (JupyterLab's metadata); its outputs; raises on an error."""
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {"cellId": cell_id}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        outputs: list[dict[str, Any]] = []
        while True:
            frame = await asyncio.wait_for(self.ws.read_message(), TIMEOUT_S)
            if frame is None:
                raise ConnectionError(f"the kernel channel closed while running {code[:80]!r}")
            if isinstance(frame, bytes):
                continue  # a message with buffers (the relay's comm traffic), not ours
            msg = json.loads(frame)
            if msg.get("parent_header", {}).get("msg_id") != msg_id or msg.get("channel") != "iopub":
                continue
            kind = msg["msg_type"]
            if kind == "error":
                raise AssertionError("cell failed: " + "\n".join(msg["content"]["traceback"]))
            if kind in ("display_data", "execute_result"):
                outputs.append(msg)
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                return outputs

    def close(self) -> None:
        self.ws.close()


class CellDriver:
    """Components displayed in notebook cells of one kernel, reached over the extension's relay."""

    name = "cell"

    def __init__(self, base_url: str, kernel_id: str, headers: dict[str, str], apps: Path) -> None:
        self.base_url = base_url
        self.kernel_id = kernel_id
        self.headers = headers
        self.apps = apps
        self.tabs: list[ProtocolClient] = []
        self._channel: KernelChannel | None = None
        self._cells: dict[str, tuple[str, dict[str, Any]]] = {}   # token -> (cell id, document reference)
        self._views = 0

    async def run_cell(self, code: str, cell_id: str) -> list[dict[str, Any]]:
        if self._channel is None:   # opened on the test's loop, on first use
            self._channel = await KernelChannel.open(self.base_url, self.kernel_id, self.headers)
        return await self._channel.execute(code, cell_id)

    async def open(self, app: str, args: dict[str, str] | None = None, *, connect: bool = True,
                   send_ready: bool = True) -> ProtocolClient:
        if args:
            raise ValueError(f"a notebook cell has no request, so no request args: {args!r}")
        if not connect:
            raise ValueError("a cell's document exists only once displayed; there is no page to fetch first")
        cell_id = uuid.uuid4().hex
        outputs = await self.run_cell((self.apps / f"{app}.py").read_text(encoding="utf-8"), cell_id)
        doc = next((dict(m["content"]["data"][MIME_TYPE]) for m in outputs if MIME_TYPE in m["content"].get("data", {})),
                   None)
        if doc is None:
            raise AssertionError(f"app {app!r} displayed no kernelstate document: {[m['msg_type'] for m in outputs]}")
        self._cells[doc["token"]] = (cell_id, doc)
        return await self._view(doc, send_ready)

    async def _view(self, doc: dict[str, Any], send_ready: bool = True) -> ProtocolClient:
        self._views += 1
        url = (self.base_url.replace("http", "ws", 1)
               + f"kernelstate/kernels/{doc['kernel_id']}/docs/{doc['doc_id']}/v{self._views}/ws")
        tab = ProtocolClient(url, headers=self.headers, ws_url=url, timeout=TIMEOUT_S, send_ready=send_ready)
        tab.token = doc["token"]
        self.tabs.append(tab)
        return await tab.connect()

    async def reconnect(self, tab: ProtocolClient) -> ProtocolClient:
        return await self._view(self._cells[tab.token][1])

    async def end_session(self, tab: ProtocolClient) -> None:
        # A cell's document lives until its cell is re-run (or deleted), as JupyterLab tells the kernel.
        await tab.close()
        await self.run_cell("pass", self._cells.pop(tab.token)[0])

    async def aclose(self) -> None:
        for tab in self.tabs:
            await tab.close()
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class WidgetDriver:
    """Components displayed in notebook cells of one kernel, reached over the widget comm (no relay)."""

    name = "widget"

    def __init__(self, connection_file: Path, apps: Path) -> None:
        self.connection_file = connection_file
        self.apps = apps
        self.tabs: list[ProtocolClient] = []
        self._client: Any = None
        self._frontend: WidgetFrontend | None = None

    async def _fe(self) -> WidgetFrontend:
        if self._frontend is None:   # opened on the test's loop, on first use
            from jupyter_client.asynchronous import AsyncKernelClient

            self._client = AsyncKernelClient(connection_file=str(self.connection_file))
            self._client.load_connection_file()
            self._client.start_channels()
            self._frontend = WidgetFrontend(self._client, timeout=TIMEOUT_S).start()
        return self._frontend

    async def open(self, app: str, args: dict[str, str] | None = None, *, connect: bool = True,
                   send_ready: bool = True) -> ProtocolClient:
        if args:
            raise ValueError(f"a notebook cell has no request, so no request args: {args!r}")
        if not connect:
            raise ValueError("a cell's document exists only once displayed; there is no page to fetch first")
        fe = await self._fe()
        outputs = await fe.run((self.apps / f"{app}.py").read_text(encoding="utf-8"))
        tab = await fe.view(model_id(outputs), send_ready=send_ready)
        self.tabs.append(tab)
        return tab

    async def reconnect(self, tab: ProtocolClient) -> ProtocolClient:
        raise NotImplementedError("a widget view does not reconnect: its connection is the widget's comm")

    async def end_session(self, tab: ProtocolClient) -> None:
        # The view leaves the page (its output cleared): the kernel destroys the output's document.
        assert isinstance(tab.ws, CommSocket)
        await tab.close()

    async def aclose(self) -> None:
        for tab in self.tabs:
            await tab.close()
        if self._frontend is not None:
            await self._frontend.stop()
            self._client.stop_channels()
            self._frontend = None
