"""Scale-out test support: the counted app, tabs, and HAProxy/nginx started from deploy/ templates.

Everything binds 127.0.0.1; every process started here is stopped by PID.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bokeh.models import Slider

from kernelstate.testing import ProtocolClient

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SECRET = "scaleout-tests-shared-secret-0123456789abcdef"

# The app counts its own runs: one line "pid session_id" per run in $ANYPROC_LOG.
COUNTED_APP = '''"""Counted"""
import os
import kernelstate as ks

with open(os.environ["ANYPROC_LOG"], "a") as log:
    log.write(f"{os.getpid()} {ks.state.session_id}\\n")
slider = ks.widgets.IntSlider(name="n", start=0, end=1000, value=1)
echo = ks.pane.Str("value=1;")
slider.param.watch(lambda e: setattr(echo, "object", f"value={e.new};"), "value")
button = ks.widgets.Button(name="Press")
button.on_click(lambda e: setattr(echo, "object", f"pressed {button.clicks}"))
ks.Column(slider, button, echo).servable()
'''
# What the app sees of its request (through a balancer: the balancer's X-Forwarded-* with --use-xheaders).
WHOAMI_APP = '''"""Whoami"""
import kernelstate as ks

ks.pane.Str(f"ip={ks.state.request.remote_ip};url={ks.state.request.url};").servable()
'''


def write_apps(directory: Path) -> tuple[Path, Path]:
    counted, whoami = directory / "app.py", directory / "whoami.py"
    counted.write_text(COUNTED_APP)
    whoami.write_text(WHOAMI_APP)
    return counted, whoami


def runs_by_session(log: Path) -> Counter[str]:
    """How many times the counted app ran for each session id (across processes)."""
    lines = log.read_text().split("\n") if log.exists() else []
    return Counter(line.split()[1] for line in lines if line.strip())


def pids_by_session(log: Path) -> dict[str, int]:
    lines = log.read_text().split("\n") if log.exists() else []
    return {line.split()[1]: int(line.split()[0]) for line in lines if line.strip()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM ``proc`` (one we started), SIGKILL it if it is still there 10 s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@dataclass
class Balancer:
    """A running HAProxy or nginx (foreground), its port and output."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def render(template: str, **values: str) -> str:
    """A deploy/ template with its @NAME@ placeholders filled in (comment lines are left as they are)."""
    lines = (DEPLOY / template).read_text().split("\n")
    for name, value in values.items():
        lines = [line if line.lstrip().startswith("#") else line.replace(f"@{name}@", value) for line in lines]
    return "\n".join(lines)


def _start(name: str, cmd: list[str], port: int) -> Balancer:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    balancer = Balancer(name, proc, port)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            balancer.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        wait_port(port)
        wait_ready(balancer.url + "/readiness")
    except TimeoutError:
        balancer.stop()
        raise RuntimeError(f"{name} did not start: {''.join(balancer.output)}") from None
    return balancer


def wait_ready(url: str, times: int = 6, timeout: float = 15.0) -> None:
    """Until ``times`` GETs in a row answer 200 (every backend is up in the balancer's eyes)."""
    deadline, ok = time.monotonic() + timeout, 0
    while ok < times:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 {times} times in a row within {timeout:.0f} s")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                ok = ok + 1 if response.status == 200 else 0
        except OSError:
            ok = 0
            time.sleep(0.2)


def start_haproxy(workdir: Path, port: int, backends: list[int], sticky: bool = False) -> Balancer:
    """HAProxy from deploy/haproxy.cfg (or haproxy-sticky.cfg) in front of ``backends``."""
    template = "haproxy-sticky.cfg" if sticky else "haproxy.cfg"
    lines = [f"    server ks{i} 127.0.0.1:{p} check" + (f" cookie ks{i}" if sticky else "")
             for i, p in enumerate(backends, 1)]
    conf = workdir / template
    conf.write_text(render(template, LISTEN=f"127.0.0.1:{port}", PUBLIC_HOST=f"127.0.0.1:{port}",
                           SERVERS="\n".join(lines)))
    check = subprocess.run([haproxy(), "-c", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return _start("haproxy", [haproxy(), "-db", "-f", str(conf)], port)


def start_nginx(workdir: Path, port: int, backends: list[int]) -> Balancer:
    """nginx from deploy/nginx.conf in front of ``backends``, its files under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [f"        server 127.0.0.1:{p};" for p in backends]
    conf = workdir / "nginx.conf"
    conf.write_text(render("nginx.conf", DIR=str(workdir), LISTEN=f"127.0.0.1:{port}", SERVERS="\n".join(lines)))
    base = [nginx(), "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return _start("nginx", base, port)


def haproxy() -> str:
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def have_balancers() -> str | None:
    """Why the balancer tests cannot run here, or None when they can."""
    missing = [name for name, path in (("haproxy", haproxy()), ("nginx", nginx())) if not os.path.exists(path)]
    return f"{' and '.join(missing)} not installed (apt-get install haproxy nginx)" if missing else None


# -- tabs ---------------------------------------------------------------------------
@dataclass
class TabResult:
    session_id: str = ""
    error: str = ""


async def open_tab_and_change(url: str, value: int, **client: Any) -> TabResult:
    """Open a tab (page + WebSocket), move its slider to ``value`` and wait for the echo."""
    tab = ProtocolClient(url, timeout=20, **client)
    result = TabResult()
    try:
        await tab.fetch_page()
        result.session_id = tab.session_id
        await tab.connect()
        await tab.set(tab.find(Slider)[0], "value", value)
        await tab.wait_for(lambda: f"value={value};" in tab.text())
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await tab.close()
    return result


async def many(n: int, concurrency: int, one: Callable[[int], Awaitable[TabResult]]) -> list[TabResult]:
    """``n`` tabs, at most ``concurrency`` opening at once."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> TabResult:
        async with gate:
            return await one(i)

    return list(await asyncio.gather(*[bounded(i) for i in range(n)]))
