"""pytest fixtures for kernelstate apps (prefix ``ks_``).

- ``ks_server``: factory ``ks_server(obj_or_path, **options) -> Server`` running
  in-process on its own thread and loop, on a free port; stopped after the test.
- ``ks_serve_process``: factory ``ks_serve_process(*args) -> ServeProcess``
  running ``kernelstate serve ARGS --port 0`` as a real subprocess; its URL is
  read from the startup banner; it is terminated (by PID) after the test.
- ``ks_clock``: a FakeClock installed for the test.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .clock import FakeClock


@pytest.fixture
def ks_server() -> Iterator[Callable[..., Any]]:
    from ..server.server import Server, serve

    started: list[Server] = []

    def factory(obj: Any, **options: Any) -> Server:
        options.setdefault("port", 0)
        server = serve(obj, threaded=True, **options)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@dataclass
class ServeProcess:
    proc: subprocess.Popen[str]
    url: str
    port: int
    output: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_serve_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> ServeProcess:
    """Start ``kernelstate serve ARGS`` on a free port and wait for its banner."""
    cmd = [sys.executable, "-m", "kernelstate.cli", "serve", *args]
    if "--port" not in args:
        cmd += ["--port", "0"]
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    output: list[str] = []
    found: dict[str, Any] = {}
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = re.search(r"serving \d+ app\(s\) on (https?://[^/\s]+:(\d+)\S*)", line)
            if m and not ready.is_set():
                found["url"], found["port"] = m.group(1), int(m.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("kernelstate serve did not start in time:\n" + "".join(output))
    if "url" not in found:
        proc.wait(5)
        raise RuntimeError(f"kernelstate serve exited with {proc.returncode}:\n" + "".join(output))
    return ServeProcess(proc, found["url"], found["port"], output)


@pytest.fixture
def ks_serve_process() -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def factory(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        proc = start_serve_process(*args, env=env)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop()


@pytest.fixture
def ks_clock() -> Iterator[FakeClock]:
    with FakeClock() as clock:
        yield clock
