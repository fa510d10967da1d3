"""Scenario 9, ``scaleout`` (kernelstate only): one process, two workers on one port, two processes behind HAProxy.

Each configuration measures what scenarios 2 and 3 do (session setup at 1 and
N clients, slider and button round trips on 1 and N sessions), through:

- ``num-procs 1``: ``kernelstate serve --num-procs 1`` (one process, pages pin their session, as by default);
- ``num-procs 2``: ``--num-procs 2``: two workers share the port, pages are stateless;
- ``2 processes + HAProxy``: two ``--stateless-pages`` processes sharing ``KERNELSTATE_SECRET_KEY``
  behind HAProxy from ``deploy/haproxy.cfg`` (round-robin, no stickiness). The runner starts the
  first process; this scenario starts the second and HAProxy, and stops both by PID.

Server CPU is the sum over every kernelstate process (HAProxy not counted).
"""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, cast

from . import scenarios
from .servers import HOST, REPO_DIR, ServerProcess, free_port

SECRET_ENV = {"KERNELSTATE_SECRET_KEY": "bench-scaleout-shared-secret-0123456789"}
HAPROXY_FLAGS = ("--stateless-pages", "--allow-host", f"{HOST}:*")
CONFIGS: dict[str, tuple[str, ...]] = {
    "num-procs 1": ("--num-procs", "1"),
    "num-procs 2": ("--num-procs", "2"),
    "2 processes + HAProxy": HAPROXY_FLAGS,
}


@dataclass
class Front:
    """What scenarios.setup/roundtrip read of a server: a port, the app path and the CPU of every process."""

    port: int
    path: str
    parts: list[ServerProcess]

    def cpu_s(self) -> float:
        return sum(part.cpu_s() for part in self.parts)


def haproxy_unavailable() -> str | None:
    return None if shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy") else "haproxy is not installed"


def _haproxy_config(port: int, backends: list[int]) -> str:
    text = (REPO_DIR / "deploy" / "haproxy.cfg").read_text()
    servers = "\n".join(f"    server ks{i} {HOST}:{p} check" for i, p in enumerate(backends, 1))
    lines = [line if line.lstrip().startswith("#") else
             line.replace("@LISTEN@", f"{HOST}:{port}").replace("@PUBLIC_HOST@", f"{HOST}:{port}")
             .replace("@SERVERS@", servers) for line in text.split("\n")]
    return "\n".join(lines)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"haproxy did not listen on {port} within {limit_s:.0f} s")


async def _measure(front: Front, sizes: scenarios.Sizes) -> dict[str, Any]:
    server = cast(ServerProcess, front)
    return {"setup": await scenarios.setup(server, sizes), "roundtrip": await scenarios.roundtrip(server, sizes)}


async def scaleout(srv: ServerProcess, sizes: scenarios.Sizes) -> dict[str, Any]:
    if "--stateless-pages" not in srv.flags:
        return await _measure(Front(srv.port, srv.path, [srv]), sizes)
    why = haproxy_unavailable()
    if why is not None:
        return {"error": why}
    second = ServerProcess(srv.target, srv.app, srv.flags, env=dict(srv.env), workdir=srv.workdir / "second")
    second.workdir.mkdir(exist_ok=True)
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(second.start)
        port = free_port()
        conf = srv.workdir / "haproxy.cfg"
        conf.write_text(_haproxy_config(port, [srv.port, second.port]))
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        with open(srv.workdir / "haproxy.log", "ab") as log:
            haproxy = subprocess.Popen([binary, "-db", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        await asyncio.to_thread(_wait_listening, port, haproxy)
        await asyncio.sleep(1.5)   # the first health checks pass before traffic
        return await _measure(Front(port, srv.path, [srv, second]), sizes)
    finally:
        if haproxy is not None and haproxy.poll() is None:
            haproxy.terminate()
            try:
                haproxy.wait(10)
            except subprocess.TimeoutExpired:
                haproxy.kill()
                haproxy.wait(5)
        second.stop()
