"""Shared helpers for the reliability and security suite (issue 10, plan R1-R15).

Every test runs its own server on 127.0.0.1 with a free port. Async test
bodies run through :func:`run`, which gives them a fresh event loop in a
worker thread: the result does not depend on whether some other fixture in
the session (Playwright's sync API, for one) left a loop running in the main
thread.

Figures each test reached are recorded with the ``figures`` fixture and
printed in the terminal summary, so the README's reliability table can be
refreshed from a run (``pytest tests/reliability -rA``).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psutil
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

_FIGURES: list[tuple[str, str, str]] = []


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 300.0) -> Any:
    """Run the coroutine function ``fn`` on a fresh loop in a worker thread and return its result."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(fn())
        except BaseException as exc:  # re-raised in the calling thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="reliability-client", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"test body did not finish within {timeout}s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def fetch(url: str, **kwargs: Any) -> HTTPResponse:
    """GET (or any method) without raising on 4xx/5xx; follows no redirects unless asked."""
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("request_timeout", 10)
    return await AsyncHTTPClient().fetch(HTTPRequest(url, **kwargs), raise_error=False)


async def open_ws(url: str, token: str, origin: str | None = None, max_message_size: int | None = None,
                  headers: dict[str, str] | None = None) -> WebSocketClientConnection:
    """A raw WebSocket to an app's ``/ws`` with the bokeh subprotocols (no ACK handling)."""
    hdrs = dict(headers or {})
    if origin is not None:
        hdrs["Origin"] = origin
    request = HTTPRequest(url, headers=hdrs, request_timeout=10)
    kwargs: dict[str, Any] = {"subprotocols": ["bokeh", token]}
    if max_message_size is not None:
        kwargs["max_message_size"] = max_message_size
    return await websocket_connect(request, **kwargs)


async def read_until_closed(ws: WebSocketClientConnection, timeout: float = 5.0) -> list[str | bytes]:
    """Every frame until the server closes; raises TimeoutError if it does not."""
    frames: list[str | bytes] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError("the server did not close the WebSocket in time")
        msg = await asyncio.wait_for(ws.read_message(), remaining)
        if msg is None:
            return frames
        frames.append(msg)


class RawWebSocket:
    """A WebSocket spoken by hand over a plain socket: for what no well-behaved client does
    (announce a frame and stop, flood without reading, vanish without closing)."""

    def __init__(self, http_url: str, token: str, origin: str | None = None, path_suffix: str = "/ws") -> None:
        import base64
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(http_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path.rstrip("/") + path_suffix
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Protocol: bokeh, {token}"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
        self._buffer = b""

    @staticmethod
    def frame(payload: bytes | str, opcode: int | None = None, length: int | None = None) -> bytes:
        """One masked client frame (``length`` may lie about the payload that follows)."""
        import struct

        data = payload.encode() if isinstance(payload, str) else payload
        if opcode is None:
            opcode = 0x1 if isinstance(payload, str) else 0x2
        n = len(data) if length is None else length
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 2**16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame."""
        import struct

        b0, b1 = self._recv_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._recv_exact(8))[0]
        return b0 & 0x0F, self._recv_exact(n)

    def read_close(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Skip data frames until the close frame; (code, reason), or (None, "") if the TCP closed first."""
        import struct

        self.sock.settimeout(timeout)
        try:
            while True:
                opcode, payload = self.read_frame()
                if opcode == 0x8:
                    if len(payload) >= 2:
                        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
                    return None, ""
        except (ConnectionError, OSError):
            return None, ""

    def close(self) -> None:
        self.sock.close()


def ws_url(http_url: str) -> str:
    return "ws" + http_url[len("http"):].rstrip("/") + "/ws"


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def collect(rounds: int = 3) -> None:
    for _ in range(rounds):
        gc.collect()


def on_loop(server: Any, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run ``fn`` on the server's loop (thread) and return its result."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    server.loop.call_soon_threadsafe(call)
    if not done.wait(timeout):
        raise TimeoutError("the server loop did not run the call in time")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


class LogRecorder(logging.Handler):
    """Thread-safe record of every log line (and its formatted size) from the server threads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.sizes: list[int] = []
        self._lock2 = threading.Lock()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # caches exc_text on the record
        # Keep a copy with the text only: the traceback's frames (and their locals) would stay alive.
        kept = logging.makeLogRecord({**record.__dict__, "msg": record.getMessage(), "args": None, "exc_info": None})
        with self._lock2:
            self.records.append(kept)
            self.sizes.append(len(text.encode("utf-8", "replace")))

    def clear(self) -> None:
        with self._lock2:
            self.records.clear()
            self.sizes.clear()

    def at_least(self, level: int, name_prefix: str = "") -> list[logging.LogRecord]:
        with self._lock2:
            return [r for r in self.records if r.levelno >= level and r.name.startswith(name_prefix)]

    def messages(self, name_prefix: str = "") -> list[str]:
        with self._lock2:
            return [r.getMessage() for r in self.records if r.name.startswith(name_prefix)]

    def total_bytes(self) -> int:
        with self._lock2:
            return sum(self.sizes)


@pytest.fixture
def logs() -> Iterator[LogRecorder]:
    """Every kernelstate/tornado log line emitted during the test, at DEBUG and above."""
    recorder = LogRecorder()
    loggers = [logging.getLogger(n) for n in ("kernelstate", "tornado")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(recorder)
        lg.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        for lg, level in saved:
            lg.removeHandler(recorder)
            lg.setLevel(level)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """``figures(name, value)`` records a figure this test reached (shown in the summary)."""
    def record(name: str, value: Any) -> None:
        _FIGURES.append((request.node.nodeid.split("::")[-1], name, str(value)))
    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, name, value in _FIGURES:
        terminalreporter.write_line(f"{test}: {name} = {value}")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
