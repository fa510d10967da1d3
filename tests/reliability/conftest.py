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
