"""ProtocolClient: does what a browser tab does, over real HTTP and WebSocket.

GET the page, read its token, open the WebSocket with it, wait for ACK,
PULL-DOC into a local replica ``Document``, then send PATCH-DOC (property
changes, UI events) and apply the server's patches as they arrive::

    async with ProtocolClient(server.url + "app") as tab:
        slider = tab.model_by_name("celsius")       # or tab.find(type=Slider)
        await tab.set(slider, "value", 30)           # PATCH-DOC, waits for OK
        await tab.wait_for(lambda: "86" in tab.text())

Built on Tornado only (a core dependency), so notebooks can use it too.
"""
from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bokeh.core.types import ID
from bokeh.document import Document
from bokeh.document.events import DocumentPatchedEvent, MessageSentEvent
from bokeh.events import ButtonClick, DocumentReady
from bokeh.model import Model
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from ..endpoint import message_frames
from ..errors import KernelstateError, ProtocolError  # ProtocolError: the server answered what a browser would refuse

_protocol = Protocol()
_ITEMS = re.compile(r'<script type="application/json" id="ks-render-items">(.*?)</script>', re.DOTALL)


class ClosedError(KernelstateError, ConnectionError):
    """The server closed the WebSocket; ``code`` and ``reason`` say why."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"WebSocket closed by the server: {code} {reason}")
        self.code = code
        self.reason = reason


def token_from_html(html: str) -> str:
    """The session token embedded in a kernelstate (or Bokeh server) page."""
    m = _ITEMS.search(html)
    if m is not None:
        items = json.loads(m.group(1))
        return str(items[0]["token"])
    m = re.search(r'"token":\s*"([^"]+)"', html)
    if m is None:
        raise ProtocolError("no session token found in the page")
    return m.group(1)


def session_id_from_token(token: str) -> str:
    import base64

    body = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["session_id"])


class ProtocolClient:
    """One simulated browser tab. Use as ``async with``; see the module docstring."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, origin: str | None = None,
                 timeout: float = 10.0, ws_url: str | None = None, send_ready: bool = True,
                 network_interface: str | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.origin = origin
        self.timeout = timeout
        self.ws_url = ws_url
        self.send_ready = send_ready
        self.network_interface = network_interface   # the local address to connect from (e.g. 127.0.0.2)
        self.html = ""
        self.status = 0
        self.token = ""
        self.document = Document()
        self.ws: WebSocketClientConnection | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.patches_received = 0
        self.bytes_received = 0  # every frame the server sent, text or binary
        #: the event kinds of every PATCH-DOC received, in order (e.g. ["ModelChanged"], ["ColumnsStreamed"])
        self.patch_kinds: list[list[str]] = []
        self.errors: list[str] = []
        self._receiver = Receiver(_protocol)
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._ack: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._outbox: list[Any] = []

    # -- connecting ----------------------------------------------------------------
    async def fetch_page(self) -> str:
        client = AsyncHTTPClient()
        try:
            response = await client.fetch(HTTPRequest(self.url, headers=self.headers, request_timeout=self.timeout, follow_redirects=True,
                                                    network_interface=self.network_interface))
        except HTTPClientError as exc:
            self.status = exc.code
            body = exc.response.body.decode("utf-8", "replace") if exc.response is not None else ""
            raise ProtocolError(f"GET {self.url} -> {exc.code}: {body[:300]}") from None
        self.status = response.code
        self.html = response.body.decode("utf-8")
        self.token = token_from_html(self.html)
        self.url = response.effective_url
        return self.html

    @property
    def session_id(self) -> str:
        return session_id_from_token(self.token)

    def _default_ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/")
        return urlunsplit((scheme, parts.netloc, path + "/ws", "", ""))

    async def connect(self, token: str | None = None) -> ProtocolClient:
        """Open the WebSocket (with the page's token), wait for ACK, pull the document."""
        token = token or self.token
        headers = dict(self.headers)
        if self.origin is not None:
            headers["Origin"] = self.origin
        request = HTTPRequest(self.ws_url or self._default_ws_url(), headers=headers, request_timeout=self.timeout,
                              network_interface=self.network_interface)
        ws = await websocket_connect(request, subprotocols=["bokeh", token])
        # A Bokeh message is several frames: without TCP_NODELAY, Nagle's algorithm and the
        # peer's delayed ACK stall every multi-frame message by ~40 ms.
        ws.stream.set_nodelay(True)
        return await self.start(ws)

    async def start(self, ws: Any) -> ProtocolClient:
        """Speak the Bokeh protocol over the open connection ``ws``: wait for ACK, pull the document.

        ``ws`` is a WebSocket, or anything with its ``read_message``, ``write_message``,
        ``close``, ``close_code`` and ``close_reason`` (e.g. a widget view's comm).
        """
        self.ws = ws
        self._ack = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(asyncio.shield(self._ack), self.timeout)
        await self.pull()
        self.document.on_change(self._local_change)
        if self.send_ready:
            self._outbox = []
            self.document.callbacks.send_event(DocumentReady())
            await self._send_local()
        return self

    async def open(self) -> ProtocolClient:
        """GET the page (unless a token is already set), then connect: what opening a tab does."""
        if not self.token:
            await self.fetch_page()
        return await self.connect()

    async def __aenter__(self) -> ProtocolClient:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 2)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
            self._reader = None

    # -- messages ------------------------------------------------------------------------
    async def _read(self) -> None:
        assert self.ws is not None
        ws = self.ws
        while True:
            fragment = await ws.read_message()
            if fragment is not None:
                self.bytes_received += len(fragment.encode() if isinstance(fragment, str) else fragment)
            if fragment is None:
                self.close_code, self.close_reason = ws.close_code, ws.close_reason
                break
            message = await self._receiver.consume(fragment)
            if message is not None:
                self._handle(message)
        exc = ClosedError(self.close_code, self.close_reason)
        for fut in [self._ack, *self._replies.values()]:
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()
        self._changed.set()

    def _handle(self, message: Any) -> None:
        msgtype = message.msgtype
        if msgtype == "ACK":
            if self._ack is not None and not self._ack.done():
                self._ack.set_result(None)
        elif msgtype == "PATCH-DOC":
            self.patch_kinds.append([str(e.get("kind")) for e in message.content.get("events", [])])
            message.apply_to_document(self.document, self)
            self.patches_received += 1
            self._changed.set()
        elif msgtype in ("OK", "ERROR", "PULL-DOC-REPLY", "SERVER-INFO-REPLY"):
            if msgtype == "ERROR":
                self.errors.append(message.content.get("text", ""))
            fut = self._replies.pop(message.header.get("reqid", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(message)

    async def request(self, message: Any) -> Any:
        """Send a message and wait for the reply to it (OK, ERROR, ...)."""
        if self.ws is None:
            raise ClosedError(self.close_code, self.close_reason)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[message.header["msgid"]] = fut
        await self.send_frames(message_frames(message))
        return await asyncio.wait_for(fut, self.timeout)

    async def send_frames(self, frames: list[str | bytes]) -> None:
        if self.ws is None:
            raise ClosedError(self.close_code, self.close_reason)
        for frame in frames:
            await self.ws.write_message(frame, binary=isinstance(frame, bytes))

    async def pull(self) -> None:
        reply = await self.request(_protocol.create("PULL-DOC-REQ"))
        if reply.msgtype != "PULL-DOC-REPLY":
            raise ProtocolError(f"PULL-DOC got {reply.msgtype}")
        reply.push_to_document(self.document)
        # Every model of the replica came from the server, so later patches must refer to them
        # by id (as BokehJS does), not re-send their definitions ("reference already known").
        self.document.models.flush_synced()

    def _local_change(self, event: Any) -> None:
        if isinstance(event, DocumentPatchedEvent) and event.setter is not self:  # type: ignore[comparison-overlap]
            self._outbox.append(event)

    async def _send_local(self) -> Any:
        events, self._outbox = self._outbox, []
        if not events:
            return None
        reply = await self.request(_protocol.create("PATCH-DOC", events))
        if reply.msgtype == "ERROR":
            raise ProtocolError(f"server refused the patch: {reply.content.get('text')}")
        return reply

    # -- what a user does ----------------------------------------------------------------
    async def set(self, model: Model | str, attr: str, value: Any) -> Any:
        """Change a property as the browser would (PATCH-DOC) and wait for OK."""
        model = self.get(model) if isinstance(model, str) else model
        self._outbox = []
        if model.lookup(attr).readonly:  # read-only in Python (FileInput.value...), set by BokehJS
            model.set_from_json(attr, value)
        else:
            setattr(model, attr, value)
        return await self._send_local()

    async def change(self, mutate: Callable[[], Any]) -> Any:
        """Run ``mutate()`` on the replica (e.g. ``source.patch(...)`` as a table edit does) and send it."""
        self._outbox = []
        mutate()
        return await self._send_local()

    async def click(self, button: Model | str) -> Any:
        """Click a Button (a ButtonClick event) and wait for OK."""
        button = self.get(button) if isinstance(button, str) else button
        self._outbox = []
        self.document.callbacks.send_event(ButtonClick(button))  # type: ignore[arg-type]  # any clickable model
        return await self._send_local()

    async def send_event(self, event: Any) -> Any:
        self._outbox = []
        self.document.callbacks.trigger_on_change(MessageSentEvent(self.document, "bokeh_event", event))
        return await self._send_local()

    # -- looking at the document --------------------------------------------------------
    def get(self, model_id: str) -> Model:
        model = self.document.get_model_by_id(ID(model_id))
        if model is None:
            raise KeyError(f"no model {model_id!r} in the document")
        return model

    def find(self, type: type[Model] | None = None, **props: Any) -> list[Model]:
        """Models of the replica matching a type and property values."""
        found = []
        for model in self.document.models:
            if type is not None and not isinstance(model, type):
                continue
            if all(getattr(model, k, object()) == v for k, v in props.items()):
                found.append(model)
        return sorted(found, key=lambda m: m.id)

    def text(self) -> str:
        """All Div/Paragraph text and widget titles/labels in the replica, joined."""
        parts = []
        for model in self.document.models:
            for attr in ("text", "title", "label"):
                value = getattr(model, attr, None) if attr in model.properties() else None
                if isinstance(value, str):
                    parts.append(value)
        return "\n".join(parts)

    def visible_text(self, sep: str = "\n") -> str:
        """What a reader sees in the tab, in document order: one line per text block, no tags.

        Roots are walked in order, children before the next sibling; hidden models
        (``visible=False``) and everything inside them are left out. HTML is reduced
        to its text (block elements start a new line, entities are decoded), a
        button shows its label, and a value widget shows ``"title: value"``.
        """
        lines: list[str] = []
        for root in self.document.roots:
            _visible_lines(root, lines)
        return sep.join(lines)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` is true (re-checked after every patch)."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while not predicate():
            if self.ws is None and self.close_code is not None:
                raise ClosedError(self.close_code, self.close_reason)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout or self.timeout}s; document text: {self.text()[:300]!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    async def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout or self.timeout)
        return self.close_code, self.close_reason


_BLOCK_TAG = re.compile(r"</?(?:p|div|br|li|ul|ol|h[1-6]|pre|tr|table|blockquote|hr)\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")


def _markup_lines(markup: str) -> list[str]:
    text = html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub("\n", markup)))
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _visible_lines(model: Model, lines: list[str]) -> None:
    props = model.properties()

    def prop(name: str) -> Any:
        return getattr(model, name) if name in props else None

    if prop("visible") is False:
        return
    children = prop("children")
    if isinstance(children, list):
        for child in children:
            child = child[0] if isinstance(child, tuple) else child
            if isinstance(child, Model):
                _visible_lines(child, lines)
        return
    text, label, title = prop("text"), prop("label"), prop("title")
    if isinstance(text, str):
        lines.extend(_markup_lines(text))
    elif isinstance(label, str) and label:
        lines.append(label)
    elif "value" in props and prop("value") is not None:
        lines.append(f"{title}: {prop('value')}" if isinstance(title, str) and title else str(prop("value")))
    elif isinstance(title, str) and title:
        lines.append(title)
