"""Shared parts of the session store tests: a real Redis server, kernelstate processes, tabs.

Every process is started here and stopped by its PID; Redis runs without
persistence (``--save '' --appendonly no``) on a free port of 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

from .support import free_port, stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SECRET = "scaleout-store-secret-0123456789abcdef0123"


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1 (with a password, so clients take it from the environment)."""

    password = "store-test-password"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--requirepass", self.password],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"redis-server is not installed ({REDIS_SERVER} missing); `make test` installs it where apt is available")
    pytest.importorskip("redis", reason="the redis client library is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


class Processes:
    """``kernelstate serve`` processes of one test, each stopped by its PID at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[ServeProcess] = []

    def serve(self, app: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        proc = start_serve_process(str(app), *args, env={**self.env, **(env or {})})
        self.started.append(proc)
        return proc

    def serve_many(self, *apps: tuple[Path, tuple[str, ...]]) -> list[ServeProcess]:
        """Start several processes at once (each start is mostly waiting for imports)."""
        found: dict[int, ServeProcess] = {}
        errors: list[BaseException] = []

        def one(i: int, app: Path, args: tuple[str, ...]) -> None:
            try:
                found[i] = start_serve_process(str(app), *args, env=self.env)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i, app, args)) for i, (app, args) in enumerate(apps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        self.started.extend(found.values())
        if errors:
            raise errors[0]
        return [found[i] for i in range(len(apps))]

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(10)


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 120.0) -> Any:
    """Run a coroutine function on a fresh loop in a thread (Playwright may hold the main thread's)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(asyncio.wait_for(fn(), timeout))
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout + 10)
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def reconnect(url: str, token: str, timeout: float = 10) -> ProtocolClient:
    """What BokehJS does after its connection dropped: connect again with the page's token."""
    tab = ProtocolClient(url, timeout=timeout)
    tab.token = token
    await tab.connect()
    return tab


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wait_for_log(proc: ServeProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the server's log:\n{proc.log_text()[-3000:]}")
        time.sleep(0.05)


CHROMIUM = os.environ.get("KERNELSTATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (Debian's, through Playwright)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} missing); `make test` installs it where apt is available")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                            "--disable-background-networking", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()
