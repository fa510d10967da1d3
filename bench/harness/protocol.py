"""A browser tab at the protocol level: HTTP GET, then the Bokeh WebSocket protocol.

What a tab does, and what :class:`BokehClient` does step by step:

1. ``GET /<app>`` on a new TCP connection and take the session token out of
   the page (Bokeh's ``render_items`` JSON carries ``"token": "..."``);
2. open ``ws://host/<app>/ws`` offering the subprotocols ``["bokeh", token]``
   (bokehjs sends the token as the second subprotocol) and wait for ``ACK``;
3. send ``PULL-DOC-REQ`` and wait for ``PULL-DOC-REPLY`` (the whole document);
4. send ``PATCH-DOC`` messages (a slider value, a button click) and wait for
   the server's ``PATCH-DOC`` that carries the visible result.

A Bokeh message is a header frame, a metadata frame, a content frame and then
a (header, payload) frame pair per binary buffer. The client writes its own
frames with TCP_NODELAY set, so any Nagle stall measured is the server's.

Every wait is bounded by :data:`OP_TIMEOUT_S`. All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"
OP_TIMEOUT_S = 30.0

_TOKEN_PATTERNS = [
    re.compile(rb'"token"\s*:\s*"([A-Za-z0-9_\-.=]+)"'),
    re.compile(rb'\\"token\\"\s*:\s*\\"([A-Za-z0-9_\-.=]+)\\"'),
    re.compile(rb'&quot;token&quot;\s*:\s*&quot;([A-Za-z0-9_\-.=]+)&quot;'),
]

_msg_ids = itertools.count(1)


class ProtocolError(RuntimeError):
    """The server answered something a browser tab could not use."""


@dataclass(frozen=True)
class Response:
    """One HTTP response with its timings (seconds since the connect started)."""

    status: int
    body: bytes
    ttfb_s: float
    total_s: float


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def http_get(port: int, path: str, timeout_s: float = OP_TIMEOUT_S) -> Response:
    """GET ``path`` on a new connection, as a new visitor would.

    Args:
        port: the server's port on 127.0.0.1.
        path: the request path, with query string if any.
        timeout_s: bound on the whole request.

    Returns:
        The status, body and timings; redirects are not followed.
    """
    return await asyncio.wait_for(_http_get(port, path), timeout_s)


async def _http_get(port: int, path: str) -> Response:
    t0 = perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    _nodelay(writer)
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                "User-Agent: kernelstate-bench/1\r\nAccept: text/html\r\n"
                "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        status_line = await reader.readline()
        ttfb = perf_counter() - t0
        if not status_line:
            raise ProtocolError(f"GET {path}: connection closed before a status line")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readline()
            body = b"".join(parts)
        else:
            body = await reader.read()
        return Response(status, body, ttfb, perf_counter() - t0)
    finally:
        writer.close()


def extract_token(page: bytes) -> str:
    """The Bokeh session token embedded in a served page.

    Raises:
        ProtocolError: the page has no ``"token": "..."`` item.
    """
    for pattern in _TOKEN_PATTERNS:
        match = pattern.search(page)
        if match:
            return match.group(1).decode()
    raise ProtocolError(f"no Bokeh session token in the page (first bytes: {page[:200]!r})")


def find_models(node: Any, out: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Collect ``(name, id, attributes)`` of every serialized Bokeh model in ``node``."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "id" in node and "name" in node:
            out.append((node["name"], node["id"], node.get("attributes", {})))
        for value in node.values():
            find_models(value, out)
    elif isinstance(node, list):
        for value in node:
            find_models(value, out)
    return out


@dataclass(frozen=True)
class Message:
    """One received Bokeh message: header, raw content text, arrival time, and its
    size on the wire: the payload bytes of all its WebSocket frames (header,
    metadata, content, buffers; without the 2-14 bytes of framing per frame)."""

    header: dict[str, Any]
    content: str
    arrived: float
    size: int = 0

    @property
    def msgtype(self) -> str:
        return str(self.header.get("msgtype"))


Predicate = Callable[[Message], bool]


def _frame_bytes(frame: str | bytes) -> int:
    """Payload bytes of one WebSocket frame (text frames are UTF-8 on the wire)."""
    return len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8"))


class BokehClient:
    """One browser tab's session with a Bokeh-protocol server.

    Args:
        port: the server's port on 127.0.0.1.
        path: the app's URL path, e.g. ``/basic``.
        ws_path: the WebSocket path; defaults to ``path + "/ws"``.
        on_message: called with every received message (e.g. to record ticks).
    """

    def __init__(
        self,
        port: int,
        path: str,
        ws_path: str | None = None,
        on_message: Callable[[Message], None] | None = None,
    ) -> None:
        self.port = port
        self.path = path
        self.ws_path = ws_path or path.split("?")[0].rstrip("/") + "/ws"
        self.on_message = on_message
        self.ws: ClientConnection | None = None
        self.slider_id: str | None = None
        self.button_id: str | None = None
        self.doc_bytes = 0
        self.clicks = 0
        self.closed_at: float | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Predicate, asyncio.Future[Message]]] = []

    # -- receiving ---------------------------------------------------------

    def expect(self, predicate: Predicate) -> asyncio.Future[Message]:
        """A future resolved by the next received message matching ``predicate``."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def _read_loop(self) -> None:
        assert self.ws is not None
        ws = self.ws
        try:
            while True:
                header_raw = await ws.recv()
                metadata = await ws.recv()
                content = await ws.recv()
                header = json.loads(header_raw)
                size = _frame_bytes(header_raw) + _frame_bytes(metadata) + _frame_bytes(content)
                for _ in range(int(header.get("num_buffers") or 0)):
                    size += _frame_bytes(await ws.recv())
                    size += _frame_bytes(await ws.recv())
                if isinstance(content, bytes):
                    content = content.decode("utf-8", "replace")
                message = Message(header, content, perf_counter(), size)
                if self.on_message is not None:
                    self.on_message(message)
                self._resolve(message)
        except ConnectionClosed:
            pass
        finally:
            why = f"websocket {self.ws_path} closed (code {ws.close_code}: {ws.close_reason or 'no reason'})"
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(ConnectionError(why))
            self._waiters = []

    def _resolve(self, message: Message) -> None:
        pending = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(message):
                future.set_result(message)
            else:
                pending.append((predicate, future))
        self._waiters = pending

    # -- sending -----------------------------------------------------------

    async def send(self, msgtype: str, content: dict[str, Any]) -> None:
        """Send one Bokeh message as bokehjs does: header, metadata, content frames."""
        assert self.ws is not None, "send() before establish()"
        await self.ws.send(json.dumps({"msgid": str(next(_msg_ids)), "msgtype": msgtype}))
        await self.ws.send("{}")
        await self.ws.send(json.dumps(content))

    # -- lifecycle ---------------------------------------------------------

    async def establish(self) -> dict[str, float]:
        """GET the page, open the WebSocket, wait for ACK, pull the document.

        Returns:
            Seconds spent in each step: ``get``, ``ws_ack``, ``pull`` and ``total``.
        """
        t0 = perf_counter()
        response = await http_get(self.port, self.path)
        if response.status != 200:
            raise ProtocolError(f"GET {self.path} -> HTTP {response.status}")
        token = extract_token(response.body)
        t1 = perf_counter()
        await self.connect(token)
        t2 = perf_counter()
        await self.pull()
        t3 = perf_counter()
        return {"get": t1 - t0, "ws_ack": t2 - t1, "pull": t3 - t2, "total": t3 - t0}

    async def connect(self, token: str) -> None:
        """Open the WebSocket with the token as second subprotocol; wait for ACK."""
        uri = f"ws://{HOST}:{self.port}{self.ws_path}"
        self.ws = await asyncio.wait_for(
            connect(
                uri,
                subprotocols=["bokeh", token],  # type: ignore[list-item]
                max_size=None,
                ping_interval=None,
                open_timeout=OP_TIMEOUT_S,
                close_timeout=5,
            ),
            OP_TIMEOUT_S,
        )
        sock = self.ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ack = self.expect(lambda m: m.msgtype == "ACK")
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        await asyncio.wait_for(ack, OP_TIMEOUT_S)

    async def pull(self) -> None:
        """Send PULL-DOC-REQ, wait for the document, note the slider and button ids."""
        reply = self.expect(lambda m: m.msgtype == "PULL-DOC-REPLY")
        await self.send("PULL-DOC-REQ", {})
        message = await asyncio.wait_for(reply, OP_TIMEOUT_S)
        self.doc_bytes = len(message.content)
        for name, model_id, attrs in find_models(json.loads(message.content), []):
            short = name.rsplit(".", 1)[-1]
            if self.slider_id is None and short.endswith("Slider") and "value" in attrs:
                self.slider_id = model_id
            elif self.button_id is None and short == "Button":
                self.button_id = model_id

    async def close(self) -> None:
        """Close the WebSocket (as closing the tab does) and stop reading."""
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 10)
            except (TimeoutError, OSError, ConnectionClosed):
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 10)
            except TimeoutError:
                self._reader.cancel()
        self.closed_at = perf_counter()

    # -- interactions ------------------------------------------------------

    async def set_slider(self, value: int) -> float:
        """Drag the slider to ``value``; seconds until ``value=<value>;`` comes back."""
        if self.slider_id is None:
            raise ProtocolError("the pulled document has no Slider model")
        marker = f"value={value};"
        done = self.expect(lambda m: m.msgtype == "PATCH-DOC" and marker in m.content)
        t0 = perf_counter()
        await self.send(
            "PATCH-DOC",
            {"events": [{"kind": "ModelChanged", "model": {"id": self.slider_id}, "attr": "value", "new": value}]},
        )
        await asyncio.wait_for(done, OP_TIMEOUT_S)
        return perf_counter() - t0

    async def click(self) -> float:
        """Click the button; seconds until ``clicks=<n>;`` comes back."""
        if self.button_id is None:
            raise ProtocolError("the pulled document has no Button model")
        self.clicks += 1
        marker = f"clicks={self.clicks};"
        done = self.expect(lambda m: m.msgtype == "PATCH-DOC" and marker in m.content)
        t0 = perf_counter()
        # bokehjs sends a ButtonClick as a MessageSent document event
        # (see bokeh/document/callbacks.py, trigger_json_event)
        event = {
            "kind": "MessageSent",
            "msg_type": "bokeh_event",
            "msg_data": {
                "type": "event",
                "name": "button_click",
                "values": {"type": "map", "entries": [["model", {"id": self.button_id}]]},
            },
        }
        await self.send("PATCH-DOC", {"events": [event]})
        await asyncio.wait_for(done, OP_TIMEOUT_S)
        return perf_counter() - t0
