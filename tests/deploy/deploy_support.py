"""Helpers for the deployment flows: processes, HTTP, and running cells over Jupyter's kernel WebSocket.

A cell runs here the way JupyterLab runs it: a kernel started through the
REST API, ``execute_request`` sent over ``{base_url}api/kernels/<id>/channels``.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "server" / "apps"
SERVE_LINK = re.compile(r"(?:https?://[^\s/]+)?/\S*/proxy/(\d+)/ks-[0-9a-f]{32}/\S*")
APP_CELL = """
import kernelstate as ks

def clicker():
    \"\"\"Clicker\"\"\"
    shown = ks.pane.Markdown("0 clicks")
    button = ks.widgets.Button(name="Click")
    count = [0]
    def on_click(event):
        count[0] += 1
        shown.object = f"{count[0]} clicks"
    button.on_click(on_click)
    return ks.Column("# Served from a kernel", shown, button)
"""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all held until every one is chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would make a child think it is elsewhere."""
    drop = ("JUPYTERHUB_", "KERNELSTATE_", "JPY_", "JUPYTER_", "VIRTUAL_ENV", "PYTHONPATH", "CONFIGPROXY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process with its output in a log file; stopped by its own PID."""

    args: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Process:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(list(self.args), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(self.env) if self.env is not None else None, cwd=self.cwd)
        return self

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if hasattr(self, "_log"):
            self._log.close()


async def fetch(url: str, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None,
                follow: bool = False, timeout: float = 90) -> HTTPResponse:
    """An HTTP request that returns error responses instead of raising them."""
    payload = json.dumps(body) if body is not None and not isinstance(body, (str, bytes)) else body
    request = HTTPRequest(url, method=method, body=payload, headers=dict(headers or {}), follow_redirects=follow,
                          request_timeout=timeout, allow_nonstandard_methods=True)
    try:
        return await AsyncHTTPClient().fetch(request, raise_error=False)
    except HTTPClientError as exc:  # pragma: no cover - raise_error=False returns responses
        assert exc.response is not None
        return exc.response


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] = lambda: True,
               log: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if not alive():
            raise AssertionError(f"{what}: the process exited\n{log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not ready within {timeout:.0f} s\n{log()}")
        time.sleep(0.25)


def http_status(url: str, headers: Mapping[str, str] | None = None) -> int:
    return asyncio.run(fetch(url, headers=headers, timeout=10)).code


class KernelChannels:
    """One kernel's channels WebSocket: run cells, collect their outputs."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.session = uuid.uuid4().hex
        self.data: list[dict[str, Any]] = []   # the mimebundles of the last cell's outputs

    @classmethod
    async def open(cls, server_url: str, kernel_id: str, headers: Mapping[str, str]) -> KernelChannels:
        ws_url = re.sub(r"^http", "ws", server_url.rstrip("/")) + f"/api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(HTTPRequest(ws_url, headers=dict(headers), request_timeout=30))
        return cls(ws)

    async def execute(self, code: str, timeout: float = 60) -> tuple[str, list[str]]:
        """Run ``code``; the reply status and every output's text (stream, text/plain, error)."""
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        texts: list[str] = []
        self.data = []
        status = None
        idle = False
        deadline = asyncio.get_running_loop().time() + timeout
        while status is None or not idle:
            remaining = deadline - asyncio.get_running_loop().time()
            raw = await asyncio.wait_for(self.ws.read_message(), max(remaining, 0.01))
            if raw is None:
                raise ConnectionError("the kernel WebSocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "stream":
                texts.append(content["text"])
            elif kind in ("display_data", "execute_result"):
                texts.append(content["data"].get("text/plain", ""))
                self.data.append(content["data"])
            elif kind == "error":
                texts.append(f"{content['ename']}: {content['evalue']}")
        return status, texts

    async def run(self, code: str, timeout: float = 60) -> str:
        status, texts = await self.execute(code, timeout)
        text = "\n".join(texts)
        if status != "ok":
            raise AssertionError(f"cell failed: {code!r}\n{text}")
        return text

    def close(self) -> None:
        self.ws.close()
