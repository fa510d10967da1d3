"""Server options: prefix, setup script, static dirs, index, autoreload, session cap, threads."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

import kernelstate as ks
from kernelstate.errors import ConfigError
from kernelstate.server.options import ServeOptions
from kernelstate.testing import ClosedError, ProtocolClient

APPS = Path(__file__).resolve().parent / "apps"


def test_prefix_and_relative_assets(ks_server: Any) -> None:
    """--prefix serves apps and assets under the prefix."""
    server = ks_server({"counter": str(APPS / "counter.py")}, prefix="/dash")
    assert server.url.endswith("/dash/")
    html = urlopen(server.url + "counter").read().decode()
    assert "./static/js/bokeh.min.js" in html
    assert urlopen(server.url + "static/js/bokeh.min.js").status == 200
    assert urlopen(server.url + "ks-static/js/kernelstate.js").status == 200

    async def main() -> None:
        async with ProtocolClient(server.url + "counter") as tab:
            assert "Hello" in tab.text()

    asyncio.run(main())


def test_setup_script_runs_once_and_can_schedule(tmp_path: Path, ks_serve_process: Any) -> None:
    """--setup runs once at startup, before any session; it may schedule tasks and hooks."""
    marker = tmp_path / "setup.log"
    setup = tmp_path / "setup.py"
    setup.write_text(
        "import kernelstate as ks\n"
        f"open({str(marker)!r}, 'a').write('setup\\n')\n"
        f"ks.state.schedule_task('tick', lambda: open({str(marker)!r}, 'a').write('tick\\n'), period='1s')\n"
        f"ks.state.on_session_created(lambda s: open({str(marker)!r}, 'a').write('created\\n'))\n"
    )
    proc = ks_serve_process(str(APPS / "counter.py"), "--setup", str(setup))
    urlopen(proc.url.rstrip("/") + "/counter").read()
    time.sleep(1.3)
    lines = marker.read_text().splitlines()
    assert lines.count("setup") == 1 and "created" in lines and "tick" in lines


def test_static_dirs_and_symlink_confinement(tmp_path: Path, ks_server: Any) -> None:
    """--static-dirs serves files, and refuses traversal and symlinks out of the directory."""
    public = tmp_path / "public"
    public.mkdir()
    (public / "hello.txt").write_text("hi")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", public / "link.txt")
    server = ks_server(str(APPS / "counter.py"), static_dirs={"assets": str(public)})
    assert urlopen(server.url + "assets/hello.txt").read() == b"hi"
    for bad in ("assets/link.txt", "assets/../secret.txt", "assets/%2e%2e/secret.txt", "static/../../etc/passwd"):
        with pytest.raises(HTTPError) as err:
            urlopen(server.url + bad)
        assert err.value.code in (403, 404), bad


def test_index_names_an_app(ks_server: Any) -> None:
    """--index NAME serves that app at /."""
    server = ks_server({"counter": str(APPS / "counter.py"), "nb": str(APPS / "notebook_app.ipynb")}, index="counter")

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            assert "Hello anonymous" in tab.text()

    asyncio.run(main())


def test_autoreload_reloads_open_pages(tmp_path: Path, ks_server: Any) -> None:
    """With --autoreload, editing the app closes open pages with a reload code and new pages run the new code."""
    app = tmp_path / "live.py"
    app.write_text("import kernelstate as ks\nks.pane.Markdown('version one').servable()\n")
    server = ks_server(str(app), autoreload=True)

    async def main() -> None:
        async with ProtocolClient(server.url + "live") as tab:
            assert "version one" in tab.text()
            await asyncio.sleep(0.3)
            app.write_text("import kernelstate as ks\nks.pane.Markdown('version two').servable()\n")
            code, reason = await tab.wait_closed(timeout=10)
            assert code == 4100 and "reload" in (reason or "")
        async with ProtocolClient(server.url + "live") as tab:
            assert "version two" in tab.text()

    asyncio.run(main())


def test_session_cap_answers_503(ks_server: Any) -> None:
    """--max-sessions: beyond the cap a new page gets 503 with Retry-After; existing sessions keep working."""
    server = ks_server(str(APPS / "counter.py"), max_sessions=2, max_sessions_per_client=2)

    async def main() -> None:
        async with ProtocolClient(server.url + "counter") as a, ProtocolClient(server.url + "counter") as b:
            with pytest.raises(HTTPError) as err:
                urlopen(server.url + "counter")
            assert err.value.code == 503 and err.value.headers["Retry-After"]
            assert "limit of 2 sessions" in err.value.read().decode()
            await a.set(a.find(__import__("bokeh.models", fromlist=["Slider"]).Slider)[0], "value", 5)
            await a.wait_for(lambda: "value is 5" in a.text())
            assert b.session_id

    asyncio.run(main())


def test_expired_token_cannot_start_a_pending_session(ks_server: Any) -> None:
    """A page token used after --session-token-expiration cannot create its session (close 4401)."""
    server = ks_server(lambda: ks.pane.Markdown("x"), reuse_sessions=True, session_token_expiration_s=0.3)

    async def main() -> None:
        urlopen(server.url).read()
        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        await asyncio.sleep(0.5)
        with pytest.raises(ClosedError) as err:
            await tab.connect()
        assert err.value.code == 4401

    asyncio.run(main())


def test_threaded_callbacks_use_num_threads(ks_server: Any) -> None:
    """--num-threads sizes the pool used by execute(schedule='thread'), with the session context kept."""
    import threading

    seen: dict[str, Any] = {}

    def app() -> Any:
        md = ks.pane.Markdown("start")

        def work() -> None:
            seen["thread"] = threading.current_thread().name
            seen["sid"] = ks.state.session_id
            md.object = "done in thread"

        ks.state.onload(lambda: ks.state.execute(work, schedule="thread"))
        return md

    server = ks_server(app, num_threads=2)

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            await tab.wait_for(lambda: "done in thread" in tab.text())
            assert seen["sid"] == tab.session_id

    asyncio.run(main())
    assert seen["thread"].startswith("kernelstate")


def test_options_validation_names_the_problem() -> None:
    """Bad options are refused with the offending value."""
    with pytest.raises(ConfigError, match="unknown server option 'prot'"):
        ServeOptions.from_kwargs(prot=1)
    with pytest.raises(ConfigError, match="port must be"):
        ServeOptions(port=70000)
    with pytest.raises(ConfigError, match="NAME=DIR"):
        ServeOptions(static_dirs=["nodir"])  # type: ignore[arg-type]


def test_session_info_through_server(ks_server: Any) -> None:
    """ks.state.session_info counts live sessions and records render times."""
    server = ks_server(str(APPS / "counter.py"))

    async def main() -> None:
        async with ProtocolClient(server.url + "counter") as tab:
            await tab.wait_for(lambda: ks.state.session_info["sessions"].get(tab.session_id, {}).get("rendered") is not None)
            info = ks.state.session_info
            assert info["live"] >= 1 and info["sessions"][tab.session_id]["path"].endswith("/counter")

    asyncio.run(main())
    assert json.dumps(ks.state.session_info)  # JSON-friendly


def test_unix_socket(tmp_path: Path) -> None:
    """--unix-socket serves over a Unix socket (owner-only), not a TCP port."""
    import socket as socketlib
    import stat

    path = str(tmp_path / "ks.sock")
    server = ks.serve(str(APPS / "counter.py"), threaded=True, unix_socket=path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with socketlib.socket(socketlib.AF_UNIX) as s:
            s.connect(path)
            s.sendall(b"GET /liveness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert b"200 OK" in data and b'"alive": true' in data
    finally:
        server.stop()
