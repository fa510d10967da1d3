"""The standalone server, driven by real protocol clients over real HTTP and WebSockets."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from bokeh.models import Button, Slider, TextInput
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

import kernelstate as ks
from kernelstate.testing import ClosedError, ProtocolClient, ProtocolError

APPS = Path(__file__).resolve().parent / "apps"
COUNTER = APPS / "counter.py"


async def fetch(url: str, **kw: Any) -> Any:
    try:
        return await AsyncHTTPClient().fetch(HTTPRequest(url, **kw), raise_error=False)
    except HTTPClientError as exc:  # pragma: no cover - raise_error=False returns responses
        return exc.response


def test_two_sessions_isolated_and_slider_round_trip(ks_server: Any) -> None:
    """Two tabs get their own sessions; moving one's slider updates only its pane."""
    server = ks_server(COUNTER)

    async def main() -> None:
        async with ProtocolClient(server.url + "counter?user=ann") as ann, ProtocolClient(server.url + "counter?user=bob") as bob:
            assert ann.session_id != bob.session_id
            assert "Hello ann" in ann.text() and "Hello bob" in bob.text()
            await ann.set(ann.find(Slider)[0], "value", 42)
            await ann.wait_for(lambda: "value is 42" in ann.text())
            await ann.click(ann.find(Button)[0])
            await ann.wait_for(lambda: "value is 52" in ann.text())
            await asyncio.sleep(0.1)
            assert "value is 0" in bob.text() and bob.find(Slider)[0].value == 0
            assert len(server.manager) == 2

    asyncio.run(main())


def test_cli_subprocess_and_bokeh_client(ks_serve_process: Any) -> None:
    """`kernelstate serve` as a real process; bokeh.client (a client nobody here wrote) pulls a session."""
    secret = "kernelstate-test-secret-0123456789abcdef"
    proc = ks_serve_process(str(COUNTER), env={"KERNELSTATE_SECRET_KEY": secret})

    async def open_page() -> tuple[str, str]:
        tab = ProtocolClient(proc.url.rstrip("/") + "/counter")
        await tab.fetch_page()
        return tab.session_id, tab.html

    session_id, html = asyncio.run(open_page())
    # bokeh reads its secret at import time, so its client runs in a fresh process.
    script = (
        "import sys\n"
        "from bokeh.client import pull_session\n"
        "from bokeh.models import Slider\n"
        "with pull_session(session_id=sys.argv[1], url=sys.argv[2]) as s:\n"
        "    texts = [m.text for m in s.document.models if hasattr(m, 'text')]\n"
        "    sliders = [m.value for m in s.document.models if isinstance(m, Slider)]\n"
        "    print(any('Hello anonymous' in t for t in texts), sliders)\n"
    )
    import os
    import subprocess
    import sys

    env = {**os.environ, "BOKEH_SECRET_KEY": secret, "BOKEH_SIGN_SESSIONS": "true"}
    out = subprocess.run([sys.executable, "-c", script, session_id, proc.url.rstrip("/") + "/counter"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "True [0]", out.stderr[-2000:]


def test_reconnect_within_lifetime_resumes_and_expiry_is_reported(ks_server: Any) -> None:
    """A tab that reconnects in time keeps its state; after expiry it gets 'session expired — reload'."""
    server = ks_server(COUNTER, unused_session_lifetime_ms=300, check_unused_sessions_ms=100)

    async def main() -> None:
        tab = ProtocolClient(server.url + "counter")
        await tab.fetch_page()
        await tab.connect()
        await tab.set(tab.find(Slider)[0], "value", 7)
        await tab.close()
        again = ProtocolClient(server.url + "counter")
        again.token = tab.token
        await again.connect()
        assert again.find(Slider)[0].value == 7 and again.session_id == tab.session_id
        await again.close()
        await asyncio.sleep(0.8)
        late = ProtocolClient(server.url + "counter")
        late.token = tab.token
        with pytest.raises(ClosedError) as err:
            await late.connect()
        assert err.value.code == 4404 and "expired" in (err.value.reason or "")

    asyncio.run(main())


def test_lifecycle_hooks_order_and_periodic_stop_on_destroy(ks_server: Any) -> None:
    """created hook before app code, onload after render, destroyed once; periodic ticks stop at destroy."""
    events: list[str] = []
    ticks: list[str] = []

    def created(session: Any) -> None:
        events.append("created")

    ks.state.on_session_created(created)

    def app() -> Any:
        events.append("app")
        ks.state.onload(lambda: events.append(f"onload:{ks.state.loaded}"))
        ks.state.on_session_destroyed(lambda ctx: events.append("destroyed"))
        ks.state.add_periodic_callback(lambda: ticks.append(ks.state.session_id), period=20)
        return ks.pane.Markdown("hooks")

    try:
        server = ks_server(app, unused_session_lifetime_ms=100, check_unused_sessions_ms=50)

        async def main() -> None:
            async with ProtocolClient(server.url) as tab:
                await tab.wait_for(lambda: "onload:True" in events)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)

        asyncio.run(main())
        assert events == ["created", "app", "onload:True", "destroyed"]
        count = len(ticks)
        assert count > 0
        import time

        time.sleep(0.3)
        assert len(ticks) == count, "periodic callback ticked after its session was destroyed"
        assert len(server.manager) == 0
    finally:
        from kernelstate.session import hooks

        hooks.created.remove(created)


def test_notebook_and_directory_apps(ks_serve_process: Any) -> None:
    """A directory serves each script/notebook at /<stem> with an index listing their titles."""
    proc = ks_serve_process(str(APPS))
    base = proc.url.rstrip("/")
    index = urlopen(base + "/").read().decode()
    assert "Counter app" in index and "Notebook app" in index and "/notebook_app" in index

    async def main() -> None:
        async with ProtocolClient(base + "/notebook_app") as tab:
            assert "from a notebook" in tab.text()
            assert tab.find(TextInput)

    asyncio.run(main())
    assert proc.log_text().count("without its 2 IPython magic/shell line(s)") == 1  # said once, at INFO


def test_bad_path_404_and_broken_app_500_others_keep_serving(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An unknown path gets a 404 page; an app that raises gets a 500 page with the error; others still work."""
    server = ks_server({"counter": str(COUNTER), "broken": str(APPS / "broken.py")})

    async def main() -> None:
        missing = await fetch(server.url + "nope")
        assert missing.code == 404 and b"Not Found" in missing.body
        broken = await fetch(server.url + "broken")
        assert broken.code == 500
        body = broken.body.decode()
        # Without --dev the page names an error id; the exception is in the log (checked below).
        assert "Error " in body and "the app divided by zero" not in body and "Traceback" not in body
        async with ProtocolClient(server.url + "counter") as tab:
            assert "Hello" in tab.text()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert any("broken" in r.getMessage() and "ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_forged_or_unsigned_session_ids_are_refused(ks_server: Any) -> None:
    """A token not signed by this server (forged, altered, unsigned) is refused with 403 before upgrade."""
    server = ks_server(COUNTER)
    from bokeh.util.token import generate_jwt_token, generate_session_id

    forged = generate_jwt_token(generate_session_id(signed=False), signed=False)

    async def main() -> None:
        page = ProtocolClient(server.url + "counter")
        await page.fetch_page()
        body, sig = page.token.split(".", 1)
        tampered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig
        for token in (forged, tampered, "junk", page.token + "x"):
            tab = ProtocolClient(server.url + "counter")
            tab.token = token
            with pytest.raises(Exception) as err:
                await tab.connect()
            assert "403" in str(err.value)
        assert len(server.manager) == 1

    asyncio.run(main())


@pytest.mark.parametrize("origin", ["http://localhost.evil.net:{port}", "http://evil.com", "null", "file://",
                                    "http://localhost:1", "https://localhost:{port}.evil.com"])
def test_hostile_origins_refused(ks_server: Any, origin: str) -> None:
    """WebSocket Origins are matched exactly against the allowlist (default: the server's own host:port)."""
    server = ks_server(COUNTER)

    async def main() -> None:
        tab = ProtocolClient(server.url + "counter", origin=origin.format(port=server.port))
        await tab.fetch_page()
        with pytest.raises(Exception) as err:
            await tab.connect()
        assert "403" in str(err.value)
        ok = ProtocolClient(server.url + "counter", origin=f"http://localhost:{server.port}")
        async with ok:
            assert ok.find(Slider)

    asyncio.run(main())


def test_liveness_and_no_store(ks_server: Any) -> None:
    """/liveness reports live sessions; session pages are never cached by browsers or proxies."""
    server = ks_server(COUNTER)

    async def main() -> None:
        async with ProtocolClient(server.url + "counter"):
            live = await fetch(server.url + "liveness")
            data = json.loads(live.body)
            assert live.code == 200 and data["alive"] is True and data["sessions"] == 1
        page = await fetch(server.url + "counter")
        assert page.headers["Cache-Control"] == "no-store"

    asyncio.run(main())


def test_token_has_no_request_secrets(ks_server: Any) -> None:
    """The page token carries the session id and expiry only, never cookies or headers."""
    server = ks_server(COUNTER)

    async def main() -> None:
        tab = ProtocolClient(server.url + "counter", headers={"Cookie": "secret_session=S3CR3T", "Authorization": "Bearer T0KEN"})
        await tab.fetch_page()
        import base64

        payload = json.loads(base64.urlsafe_b64decode(tab.token.split(".")[0] + "=="))
        assert set(payload) == {"session_id", "session_expiry"}
        assert "S3CR3T" not in tab.html and "T0KEN" not in tab.html

    asyncio.run(main())


def test_malformed_message_closes_only_that_connection(ks_server: Any) -> None:
    """Garbage closes that socket with a 4xxx code; another tab keeps working."""
    server = ks_server(COUNTER)

    async def main() -> None:
        async with ProtocolClient(server.url + "counter") as good, ProtocolClient(server.url + "counter") as bad:
            await bad.send_frames(["{not json"])
            code, reason = await bad.wait_closed()
            assert code is not None and 4000 <= code <= 4999 and "malformed" in (reason or "")
            await good.set(good.find(Slider)[0], "value", 3)
            await good.wait_for(lambda: "value is 3" in good.text())

    asyncio.run(main())


def test_ks_serve_stop_frees_port_and_runs_destroyed_hooks() -> None:
    """stop() destroys every session (hooks run) and frees the port."""
    destroyed: list[str] = []

    def app() -> Any:
        ks.state.on_session_destroyed(lambda ctx: destroyed.append(ctx.id))
        return ks.pane.Markdown("x")

    server = ks.serve(app, threaded=True)

    async def main() -> None:
        async with ProtocolClient(server.url):
            pass

    asyncio.run(main())
    port = server.port
    server.stop()
    assert len(destroyed) == 1
    assert not server.thread.is_alive()
    again = ks.serve(app, threaded=True, port=port)  # the port is free for the next server
    try:
        assert again.port == port
    finally:
        again.stop()


def test_cli_help_is_complete() -> None:
    """`kernelstate serve --help` documents every flag."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "kernelstate.cli", "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--port", "--address", "--prefix", "--show", "--autoreload", "--num-threads", "--unused-session-lifetime",
                 "--check-unused-sessions", "--keep-alive", "--session-token-expiration", "--allow-websocket-origin",
                 "--setup", "--static-dirs", "--index", "--log-level", "--reuse-sessions", "--warm", "--global-loading-spinner",
                 "--max-sessions-per-client", "--first-connect-timeout", "--idle-connection-timeout", "--body-timeout",
                 "--max-connections-per-client"):
        assert flag in out, flag
    top = subprocess.run([sys.executable, "-m", "kernelstate.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in top


def test_cli_bad_app_path_is_a_clear_error() -> None:
    """A missing app path exits 2 with a message naming it."""
    from kernelstate.cli import main

    assert main(["serve", "/no/such/app.py", "--port", "0"]) == 2


def test_protocol_client_reports_http_errors(ks_server: Any) -> None:
    """ProtocolClient raises with the status for a page that fails."""
    server = ks_server(COUNTER)

    async def main() -> None:
        with pytest.raises(ProtocolError, match="404"):
            await ProtocolClient(server.url + "missing").fetch_page()

    asyncio.run(main())
