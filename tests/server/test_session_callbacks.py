"""Issue 14, served: tasks from app code outlive their session, coroutine callbacks belong to it,
exception_handler runs in it. A real server, driven by protocol clients."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Button

import kernelstate as ks
from kernelstate.tasks import tasks
from kernelstate.testing import ProtocolClient, ProtocolError

TASK_APP = '''"""Task app"""
import weakref

import kernelstate as ks


def one():
    return 1


def tick():
    ks.state.cache["issue14-ticks"] = ks.state.cache.get("issue14-ticks", 0) + one()


ks.state.schedule_task("issue14-globals", tick, period=0.05)
periodic = ks.state.add_periodic_callback(lambda: None, period=200)
ks.state.cache.setdefault("issue14-sessions", []).append(weakref.ref(ks.state.session))
ks.pane.Markdown("a task app").servable()
'''


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def clean_cache() -> Iterator[None]:
    yield
    tasks.cancel_all()
    for key in [k for k in ks.state.cache if str(k).startswith("issue14-")]:
        del ks.state.cache[key]


def test_task_from_a_served_script_outlives_its_session(ks_server: Any, tmp_path: Path, clean_cache: None,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The task keeps running with the script's globals after the session is gone; the session is not kept alive."""
    script = tmp_path / "task_app.py"
    script.write_text(TASK_APP)
    server = ks_server(str(script), unused_session_lifetime_ms=100, check_unused_sessions_ms=50)

    async def visit() -> None:
        async with ProtocolClient(server.url + "task_app") as tab:
            assert "a task app" in tab.text()

    with caplog.at_level(logging.ERROR):
        asyncio.run(visit())
        assert wait_until(lambda: len(server.manager) == 0), "the session did not expire"
        before = ks.state.cache.get("issue14-ticks", 0)
        assert wait_until(lambda: ks.state.cache.get("issue14-ticks", 0) >= before + 3), "the task stopped with its session"
    assert not [r for r in caplog.records if "issue14-globals" in r.getMessage()], [r.getMessage() for r in caplog.records]
    refs = ks.state.cache["issue14-sessions"]
    # (a cancelled timer keeps its context, and so the session, until its due time has passed)
    assert refs and wait_until(lambda: gc.collect() >= 0 and all(ref() is None for ref in refs)), \
        "the task kept its first session alive"


def async_click_app(record: list[tuple[str, str]]) -> Callable[[], Any]:
    def app() -> Any:
        button = ks.widgets.Button(name="go")
        broken = ks.widgets.Button(name="break")

        async def go(event: Any) -> None:
            record.append(("started", ks.state.session_id))
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                record.append(("cancelled", ks.state.session_id))
                raise

        async def fail(event: Any) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("async click broke")

        button.on_click(go)
        broken.on_click(fail)
        ks.config.exception_handler = lambda exc: record.append(("handled " + repr(exc), ks.state.session_id))
        return ks.Row(button, broken)
    return app


def test_async_on_click_belongs_to_its_session(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An async on_click runs in its session, its failure is logged with the session id and handled,
    and it is cancelled when the session is destroyed."""
    record: list[tuple[str, str]] = []
    server = ks_server(async_click_app(record), unused_session_lifetime_ms=100, check_unused_sessions_ms=50)

    async def main() -> str:
        async with ProtocolClient(server.url) as tab:
            await tab.click(tab.find(Button, label="go")[0])
            await tab.click(tab.find(Button, label="break")[0])
            await tab.wait_for(lambda: len(record) >= 2)
            return tab.session_id

    with caplog.at_level(logging.ERROR):
        sid = asyncio.run(main())
        assert wait_until(lambda: ("cancelled", sid) in record), record
    assert ("started", sid) in record
    assert ("handled RuntimeError('async click broke')", sid) in record
    assert any(f"session={sid}" in r.getMessage() and "async click broke" in str(r.exc_info) for r in caplog.records)
    assert not any("never retrieved" in r.getMessage() for r in caplog.records)


def test_exception_handler_shows_the_user_something(ks_server: Any) -> None:
    """A sync on_click that raises: the session's handler updates that session's page."""
    def app() -> Any:
        button = ks.widgets.Button(name="fail")
        status = ks.pane.Str("all good")
        button.on_click(lambda event: 1 / 0)
        ks.config.exception_handler = lambda exc: setattr(status, "object", f"sorry: {exc}")
        return ks.Column(button, status)

    server = ks_server(app)

    async def main() -> None:
        async with ProtocolClient(server.url) as one, ProtocolClient(server.url) as two:
            with pytest.raises(ProtocolError, match="ZeroDivisionError"):
                await one.click(one.find(Button)[0])
            await one.wait_for(lambda: "sorry: division by zero" in one.text())
            await asyncio.sleep(0.1)
            assert "all good" in two.text()

    asyncio.run(main())


def test_task_from_app_code_is_recreated_by_the_next_server(clean_cache: None) -> None:
    """Stop a threaded ks.serve server whose app scheduled a task, start another: its app code re-creates the task."""
    def app() -> Any:
        server_no = ks.state.cache["issue14-server"]
        ks.state.schedule_task(
            "issue14-per-server",
            lambda: ks.state.cache.__setitem__("issue14-last", server_no),
            period=0.05,
        )
        return ks.pane.Markdown(f"server {server_no}")

    async def visit(url: str) -> None:
        async with ProtocolClient(url) as tab:
            assert "server" in tab.text()

    for server_no in (1, 2):
        ks.state.cache["issue14-server"] = server_no
        server = ks.serve(app, port=0, threaded=True)
        try:
            asyncio.run(visit(server.url))
            assert wait_until(lambda n=server_no: ks.state.cache.get("issue14-last") == n), \
                f"the task of server {server_no} never ran"
        finally:
            server.stop()
