"""R15 (launcher): another local account reaches nothing of the jupyter-server-proxy launcher's apps.

A real Jupyter server with jupyter-server-proxy and the kernelstate extension starts the launcher's
``kernelstate serve`` on first use. Then, as ``nobody`` (``runuser``, the system Python, standard library
only: ``nobody`` cannot run an interpreter under root's home), a probe does what a curious neighbour
would: reads the server's command line and environment through ``/proc``, takes any URL prefix and port
it finds there, and tries every TCP port the server listens on and its Unix socket. Nothing may answer
with an app. The same folder, with a symlink leading out of it, is refused alike by the launcher and
the extension.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from bokeh.models import Button
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.jupyter.proxy import PROXY_NAME
from kernelstate.testing import ProtocolClient
from kernelstate.testing.jupyter import launcher_processes

APPS = Path(__file__).resolve().parents[2] / "server" / "apps"
SYSTEM_PYTHON = "/usr/bin/python3"
OUTSIDE_TEXT = "FROM-OUTSIDE-THE-FOLDER"

# Run as nobody: standard library only, no access to anything under the test's (root-only) tmp folder.
PROBE = r'''
import json, re, socket, sys

pid, socket_path, ports, jupyter = json.loads(sys.argv[1])
report = {"cmdline": None, "environ": None, "unix_socket": None, "answers": {}}
try:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    report["cmdline"] = argv
except OSError as exc:
    argv = []
    report["cmdline"] = type(exc).__name__
try:
    with open(f"/proc/{pid}/environ", "rb") as f:
        report["environ"] = f.read().decode(errors="replace")
except OSError as exc:
    report["environ"] = type(exc).__name__
text = " ".join(argv)
prefixes = sorted(set(re.findall(r"/ks-[0-9a-f]{32}", text))) + [""]
ports = sorted(set(ports) | {int(p) for p in re.findall(r"--port[= ](\d+)", text)})


def get(connect, target):
    sock = connect()
    try:
        sock.settimeout(10)
        sock.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0, body.decode(errors="replace")


def unix():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    return sock


try:
    status, body = get(unix, "/counter")
    report["unix_socket"] = [status, body[:300]]
except OSError as exc:
    report["unix_socket"] = type(exc).__name__
for port in ports:
    for prefix in prefixes:
        for path in ("/", "/counter"):
            try:
                report["answers"][f"{port}{prefix}{path}"] = get(lambda: socket.create_connection(("127.0.0.1", port)),
                                                                 prefix + path)[0]
            except OSError as exc:
                report["answers"][f"{port}{prefix}{path}"] = type(exc).__name__
host, port, path = jupyter
report["jupyter_without_credentials"] = get(lambda: socket.create_connection((host, port)), path)[0]
print(json.dumps(report))
'''


def other_account_available() -> str | None:
    """Why the probe cannot run as another uid here, or None."""
    if os.geteuid() != 0:
        return "needs root to switch to the nobody account"
    if shutil.which("runuser") is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs runuser and {SYSTEM_PYTHON}"
    try:
        import pwd
        pwd.getpwnam("nobody")
    except KeyError:
        return "no nobody account"
    return None


@pytest.fixture
def jp_server_config(ks_launcher_config: Any) -> Any:
    return ks_launcher_config


@pytest.fixture
def folder(jp_root_dir: Path) -> Path:
    """The Jupyter root, which the launcher serves too: the counter app, and a link out of the folder."""
    shutil.copy(APPS / "counter.py", jp_root_dir / "counter.py")
    outside = Path(str(jp_root_dir) + "-outside")
    outside.mkdir()
    (outside / "evil.py").write_text(f'import kernelstate as ks\nks.pane.Str("{OUTSIDE_TEXT}").servable()\n')
    (jp_root_dir / "leak.py").symlink_to(outside / "evil.py")
    return jp_root_dir


async def probe_as_nobody(pid: int, socket_path: str, ports: list[int], jupyter: tuple[str, int, str]) -> Any:
    proc = await asyncio.create_subprocess_exec(
        "runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-I", "-c", PROBE,
        json.dumps([pid, socket_path, ports, list(jupyter)]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd="/")
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_other_accounts_reach_nothing_of_the_launcher(
        jp_serverapp: Any, http_server_client: Any, folder: Path, jp_http_port: int,
        jp_auth_header: dict[str, str], figures: Any) -> None:
    """As nobody: no TCP port of the launcher's server, its Unix socket refused, no secret in its argv,
    its environment unreadable, Jupyter's route closed without credentials."""
    reason = other_account_available()
    if reason:
        pytest.skip(reason)
    origin = f"http://localhost:{jp_http_port}"
    url = f"{origin}{jp_serverapp.base_url}{PROXY_NAME}/"
    async with ProtocolClient(url + "counter", headers=jp_auth_header, origin=origin, timeout=60) as tab:
        await tab.click(tab.find(Button)[0])
        await tab.wait_for(lambda: "value is 10" in tab.text())   # the owner is served through the proxy
    [server] = launcher_processes()
    argv = server.cmdline()
    socket_path = argv[argv.index("--unix-socket") + 1] if "--unix-socket" in argv else ""
    ports = sorted({c.laddr.port for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN})

    report = await probe_as_nobody(server.pid, socket_path, ports,
                                   ("127.0.0.1", jp_http_port, f"{jp_serverapp.base_url}{PROXY_NAME}/counter"))

    reached = {target: status for target, status in report["answers"].items() if status == 200}
    assert reached == {}, f"nobody was served {sorted(reached)} using argv {report['cmdline']}"
    assert ports == [], f"the launcher's server listens on TCP {ports}"
    assert report["unix_socket"] == "PermissionError", report["unix_socket"]
    assert report["environ"] == "PermissionError", "nobody can read the server's environment"
    assert isinstance(report["cmdline"], list) and not any("ks-" in a for a in report["cmdline"]), report["cmdline"]
    assert report["jupyter_without_credentials"] in (302, 403), report["jupyter_without_credentials"]
    assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(socket_path).parent).st_mode) == 0o700
    figures("as nobody", f"apps served 0; TCP ports of the server {len(ports)}; Unix socket connect "
                         f"{report['unix_socket']} (folder 0700, socket 0600); /proc environ {report['environ']}; "
                         "secret prefixes in argv 0")


@pytest.mark.parametrize("host", ["launcher", "extension"])
async def test_a_link_out_of_the_folder_is_refused_by_both_hosts(
        host: str, jp_serverapp: Any, http_server_client: Any, folder: Path, jp_http_port: int,
        jp_auth_header: dict[str, str]) -> None:
    """`leak.py` links out of the served folder: neither the launcher nor the extension lists or serves it,
    under its own name or its target's."""
    base = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}"
    index_url, leak_url = {
        "launcher": (f"{base}{PROXY_NAME}/", f"{base}{PROXY_NAME}/leak"),
        "extension": (f"{base}kernelstate/apps/", f"{base}kernelstate/apps/leak.py"),
    }[host]
    client = AsyncHTTPClient()
    index = await client.fetch(HTTPRequest(index_url, headers=jp_auth_header, request_timeout=90), raise_error=False)
    assert index.code == 200, index.body[:500]
    listed = index.body.decode().lower()
    assert "counter" in listed and "leak" not in listed and "evil" not in listed, listed[-1500:]
    for url in (leak_url, leak_url.replace("leak", "evil")):
        leak = await client.fetch(HTTPRequest(url, headers=jp_auth_header, request_timeout=90), raise_error=False)
        assert leak.code in (403, 404) and OUTSIDE_TEXT.encode() not in leak.body, (url, leak.code, leak.body[:300])


if sys.platform != "linux":  # pragma: no cover - /proc and runuser are Linux's
    pytestmark = pytest.mark.skip(reason="the other-account probe reads /proc (Linux)")
