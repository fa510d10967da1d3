"""``%serve`` / ``%%serve`` in a real IPython kernel, driven over jupyter_client."""
from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Button
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.testing import ProtocolClient

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

URL = re.compile(r"(?:https?://[^\s/]+)?/\S*ks-[0-9a-f]{32}/\S*")
APP_CODE = """
import kernelstate as ks

def ticking():
    \"\"\"Ticking app\"\"\"
    shown = ks.pane.Str("tick 0")
    count = [0]
    def tick():
        count[0] += 1
        shown.object = f"tick {count[0]}"
    ks.state.add_periodic_callback(tick, period=50)
    return ks.Column("# Ticking", shown)
"""


class Kernel:
    """A kernel and a blocking client; ``run(code)`` returns the outputs' text/plain."""

    def __init__(self, env: dict[str, str]) -> None:
        self.manager, self.client = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env)

    def run(self, code: str, allow_error: bool = False, timeout: float = 60) -> list[str]:
        outputs: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        texts = []
        for msg in outputs:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                texts.append(content["text"])
            elif msg["msg_type"] in ("display_data", "execute_result"):
                texts.append(content["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                texts.append(f"{content['ename']}: {content['evalue']}")
        if reply["content"]["status"] != "ok" and not allow_error:
            raise AssertionError(f"cell failed: {code!r}\n" + "\n".join(texts))
        return texts

    def serve(self, line: str) -> tuple[str, int]:
        """Run a %serve line; the first link it printed, and its port."""
        text = "\n".join(self.run(line))
        match = URL.search(text)
        assert match is not None, text
        port = re.search(r"on port (\d+)", text)
        assert port is not None, text
        return match.group(0), int(port.group(1))

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    runtime = tmp_path_factory.mktemp("runtime")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "KERNELSTATE_JUPYTER_URL"))}
    env["JUPYTER_RUNTIME_DIR"] = str(runtime)   # no jpserver-*.json: a kernel outside any Jupyter server
    k = Kernel(env)
    try:
        k.run("%load_ext kernelstate")
        k.run(APP_CODE)
        yield k
    finally:
        k.shutdown()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on ``port``, from the kernel's own table (/proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


async def status_of(url: str, **headers: str) -> int:
    response = await AsyncHTTPClient().fetch(HTTPRequest(url, headers=headers, follow_redirects=False), raise_error=False)
    return response.code


def test_serve_runs_on_the_kernel_loop_and_stop_frees_the_port(kernel: Kernel) -> None:
    """%serve a callable: direct link, live page and WebSocket, ticks while idle; --stop frees the port."""
    url, port = kernel.serve("%serve ticking")
    assert url.startswith(f"http://localhost:{port}/ks-"), url
    listing = "\n".join(kernel.run("%serve --list"))
    assert str(port) in listing and "kernel loop" in listing
    if Path("/proc/net/tcp").exists():  # reliability R15: loopback only, never a wildcard address
        assert listening_addresses(port) == {"127.0.0.1"}, listening_addresses(port)

    async def visit() -> None:
        async with ProtocolClient(url) as tab:
            assert "Ticking" in tab.text()
            # The kernel is idle between cells: its loop still runs the app's periodic callback.
            await tab.wait_for(lambda: "tick 5" in tab.text(), timeout=10)

    asyncio.run(visit())
    assert kernel.run("21 * 2") == ["42"]
    assert f"stopped server(s) on port {port}" in "\n".join(kernel.run(f"%serve --stop {port}"))
    assert port_is_free(port)
    assert kernel.run("'still responsive'") == ["'still responsive'"]
    assert "no servers running" in "\n".join(kernel.run("%serve --list"))


def test_serve_path_threaded(kernel: Kernel, tmp_path: Path) -> None:
    """%serve a script path with --threaded: its own thread; the app's route is in the link."""
    script = tmp_path / "hello_app.py"
    script.write_text('"""Hello app"""\nimport kernelstate as ks\nks.Column("# Hello from a script").servable()\n')
    url, port = kernel.serve(f"%serve {script} --threaded")
    assert url.endswith("/hello_app"), url
    assert "threaded" in "\n".join(kernel.run("%serve --list"))

    async def visit() -> None:
        async with ProtocolClient(url) as tab:
            assert "Hello from a script" in tab.text()

    asyncio.run(visit())
    kernel.run("%serve --stop all")
    assert port_is_free(port)


def test_cell_serve_runs_per_session(kernel: Kernel) -> None:
    """%%serve: each session runs the cell afresh (own globals), reading the notebook's names."""
    kernel.run("greeting = 'Hello from the notebook'")
    url, port = kernel.serve(
        "%%serve --title Clicks\n"
        "clicks = 0\n"
        "shown = ks.pane.Markdown(f'{greeting}: 0 clicks')\n"
        "button = ks.widgets.Button(name='Click')\n"
        "def on_click(event):\n"
        "    global clicks\n"
        "    clicks += 1\n"
        "    shown.object = f'{greeting}: {clicks} clicks'\n"
        "button.on_click(on_click)\n"
        "ks.Column(shown, button).servable()\n"
    )

    async def visit() -> None:
        async with ProtocolClient(url) as ann, ProtocolClient(url) as bob:
            assert ann.session_id != bob.session_id
            assert "Hello from the notebook: 0 clicks" in ann.text()
            for _ in range(2):
                await ann.click(ann.find(Button)[0])
            await ann.wait_for(lambda: "2 clicks" in ann.text())
            await bob.click(bob.find(Button)[0])
            await bob.wait_for(lambda: "1 clicks" in bob.text())
            assert "2 clicks" in ann.text()

    asyncio.run(visit())
    # The cell ran only for the sessions, never in the notebook itself.
    assert kernel.run("'clicks' in globals()") == ["False"]
    kernel.run(f"%serve --stop {port}")


def test_serve_errors_are_clear_and_harmless(kernel: Kernel) -> None:
    """Bad %serve lines get one-line usage errors; the kernel keeps working."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cases = {
        f"%serve ticking --port {busy.getsockname()[1]}": "cannot listen on 127.0.0.1:",
        "%serve {'/a': ticking, '/b': 42 + 'x'}": "cannot evaluate",
        "%serve not_defined_anywhere": "cannot evaluate 'not_defined_anywhere'",
        "%serve missing_notebook.ipynb": "no such file 'missing_notebook.ipynb'",
        "%serve --stop 1": "no kernelstate server on port 1",
        "%serve ticking --port x": "--port expects a number",
        "%serve ticking --bogus": "unknown option '--bogus'",
        "%serve": "what should be served?",
        "%%serve\ndef broken(:\n": "syntax error",
    }
    for line, message in cases.items():
        text = "\n".join(kernel.run(line, allow_error=True))
        assert "UsageError" in text and message in text, (line, text)
    busy.close()
    assert kernel.run("1 + 1") == ["2"]
    assert "no servers running" in "\n".join(kernel.run("%serve --list"))


def test_proxied_link_and_origin_from_the_jupyter_environment(kernel: Kernel) -> None:
    """Behind JupyterHub the link is {prefix}proxy/{port}/ks-<secret>/; the prefix is required.
    The hub's public host is unknown here: a WebSocket may come only from the origin its own Host names."""
    kernel.run("import os; os.environ['JUPYTERHUB_SERVICE_PREFIX'] = '/user/test/'")
    try:
        link, port = kernel.serve("%serve ticking")
    finally:
        kernel.run("del os.environ['JUPYTERHUB_SERVICE_PREFIX']")
    assert re.fullmatch(rf"/user/test/proxy/{port}/ks-[0-9a-f]{{32}}/", link), link
    # What jupyter-server-proxy forwards from /user/test/proxy/<port>/<rest>: /<rest>, with the
    # browser's Host and Origin.
    backend = f"http://127.0.0.1:{port}" + link.split(f"/proxy/{port}", 1)[1]
    hub = "hub.example.org:8443"

    async def visit() -> None:
        assert await status_of(f"http://127.0.0.1:{port}/") == 404
        assert await status_of(f"http://127.0.0.1:{port}/ticking") == 404
        async with ProtocolClient(backend, headers={"Host": hub}, origin=f"https://{hub}") as tab:
            assert "Ticking" in tab.text()
        stranger = ProtocolClient(backend, headers={"Host": hub}, origin="https://evil.example")
        await stranger.fetch_page()
        with pytest.raises(Exception, match="403"):
            await stranger.connect()
        lookalike = ProtocolClient(backend, origin=f"https://{hub.split(':')[0]}.evil.example:8443")
        await lookalike.fetch_page()
        with pytest.raises(Exception, match="403"):
            await lookalike.connect()

    asyncio.run(visit())
    kernel.run(f"%serve --stop {port}")


def test_hosts_and_origins_come_from_the_jupyter_public_url(kernel: Kernel) -> None:
    """With the hub's public URL known, the %serve server answers that host (and its own names) only,
    and takes WebSockets from that origin only: nothing is learned from the requests themselves."""
    hub = "hub.example.org:8443"
    kernel.run("import os; os.environ.update(JUPYTERHUB_SERVICE_PREFIX='/user/test/', "
               f"JUPYTERHUB_PUBLIC_URL='https://{hub}/user/test/')")
    try:
        link, port = kernel.serve("%serve ticking")
    finally:
        kernel.run("del os.environ['JUPYTERHUB_SERVICE_PREFIX'], os.environ['JUPYTERHUB_PUBLIC_URL']")
    assert link.startswith(f"https://{hub}/user/test/proxy/{port}/ks-"), link
    backend = f"http://127.0.0.1:{port}" + link.split(f"/proxy/{port}", 1)[1]
    rebound = f"evil.example:{port}"

    async def visit() -> None:
        async with ProtocolClient(backend, headers={"Host": hub}, origin=f"https://{hub}") as tab:
            assert "Ticking" in tab.text()
        # A DNS-rebinding page: its own name in Host and Origin, the secret prefix guessed right.
        assert await status_of(backend, Host=rebound) == 403
        for _ in range(2):   # asking again teaches the server nothing
            assert await status_of(backend, Host=rebound) == 403
        stranger = ProtocolClient(backend, headers={"Host": hub}, origin=f"http://{rebound}")
        await stranger.fetch_page()
        with pytest.raises(Exception, match="403"):
            await stranger.connect()
        async with ProtocolClient(backend) as direct:   # its own loopback name still works
            assert "Ticking" in direct.text()

    asyncio.run(visit())
    kernel.run(f"%serve --stop {port}")


def test_load_ext_is_cheap() -> None:
    """Importing the magics module loads neither Bokeh nor Tornado (the server loads on first %serve)."""
    import subprocess
    import sys

    code = ("import sys, kernelstate.jupyter.magics\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bokeh', 'tornado'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_line_parsing_keeps_expressions_whole() -> None:
    """Options are found anywhere in the line; the rest is the expression, spaces included."""
    from IPython.core.error import UsageError

    from kernelstate.jupyter.magics import parse_line

    args = parse_line('{"/a": app_a, "/b": app_b} --port 5007 --threaded --allow-websocket-origin=x.org')
    assert (args.expr, args.port, args.threaded, args.origins) == ('{"/a": app_a, "/b": app_b}', 5007, True, ["x.org"])
    assert parse_line("--stop").stop == "all" and parse_line("--stop 5006").stop == "5006"
    assert parse_line("app --direct").proxy is False and parse_line("app --proxy").proxy is True
    with pytest.raises(UsageError, match="--port needs a value"):
        parse_line("app --port")


def test_kernel_exit_destroys_served_sessions(tmp_path: Path) -> None:
    """When the kernel process exits, %serve'd servers destroy their sessions (destroyed hooks run)."""
    import subprocess
    import sys

    marker = tmp_path / "destroyed.txt"
    script = f"""
import asyncio
import kernelstate as ks
from kernelstate.jupyter import kernel_server
from kernelstate.testing import ProtocolClient

def app():
    ks.state.on_session_destroyed(lambda session: open({str(marker)!r}, "a").write("destroyed\\n"))
    return ks.pane.Markdown("# bye")

async def main():
    kernel_server.start(app, label="app")            # on this loop, as in a kernel
    threaded = kernel_server.start(app, label="app", threaded=True)
    for served in kernel_server.served():
        async with ProtocolClient(served.url):
            pass

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert marker.read_text().splitlines() == ["destroyed", "destroyed"]
