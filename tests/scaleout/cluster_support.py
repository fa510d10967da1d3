"""Helpers of the cluster tests (tests/scaleout/test_cluster*.py): a real redis-server, log waiting, offloaded functions.

The offloaded functions live here (not in a test module) so Dask workers can run them:
the tests register this module with cloudpickle to be pickled by value.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import kernelstate as ks

from .support import free_port, stop_process


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc)


def start_redis(workdir: Path, port: int | None = None) -> RedisServer:
    """``redis-server`` in the foreground on 127.0.0.1, no persistence; returns once it answers PING."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; `make test` installs it where apt is available")
    redis = pytest.importorskip("redis", reason="the redis client library is not installed")

    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
    client.close()
    return RedisServer(proc, port, workdir)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


# -- functions offloaded to Dask workers or executors --------------------------------------
def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def sleep_then(value: int, seconds: float) -> int:
    """Ignores the cancellation signal: runs to its end."""
    time.sleep(seconds)
    return value


def until_cancelled(progress: str, limit_s: float = 30.0) -> str:
    """Checks ``ks.cancellation()`` every 20 ms; writes when it started and when it saw the signal."""
    Path(progress).write_text(f"started {time.time()}\n")
    start = time.monotonic()
    signal_ = ks.cancellation()
    while time.monotonic() - start < limit_s:
        if signal_.cancelled:
            with open(progress, "a") as f:
                f.write(f"stopped {time.time()}\n")
            return "stopped"
        time.sleep(0.02)
    return "ran out"


def pid() -> int:
    return os.getpid()
