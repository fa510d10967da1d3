"""Issue 14: thread work of destroyed sessions, the pool size rule, coroutine callbacks, exception_handler."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.coroutines import install
from kernelstate.session import Session
from kernelstate.tasks import tasks
from kernelstate.testing import FakeClock
from kernelstate.threads import pool_size, thread_pool


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The process pool with exactly one worker (restored afterwards)."""
    before = ks.config.nthreads
    ks.config.set("nthreads", 1, process=True)
    thread_pool.get()
    try:
        yield
    finally:
        ks.config.set("nthreads", before, process=True)


@pytest.fixture
def handler() -> Iterator[list[tuple[str, str]]]:
    """A process-level exception_handler that records (current session id, exception repr)."""
    seen: list[tuple[str, str]] = []
    ks.config.exception_handler = lambda exc: seen.append((ks.state.session_id, repr(exc)))
    try:
        yield seen
    finally:
        ks.config.exception_handler = None


def _block_the_pool() -> threading.Event:
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    thread_pool.get().submit(hold)
    assert started.wait(5)
    return release


def test_queued_thread_work_of_a_destroyed_session_never_starts(one_thread: None) -> None:
    """execute(schedule='thread') and onload(threaded=True) queued behind busy threads do not run after destroy."""
    ran: list[str] = []
    session = Session()
    session.mark_loaded()
    release = _block_the_pool()
    try:
        with activate(session):
            future = ks.state.execute(lambda: ran.append(ks.state.session_id), schedule="thread")
            ks.state.onload(lambda: ran.append("onload"), threaded=True)
        session.destroy()
    finally:
        release.set()
    thread_pool.get().submit(lambda: None).result(5)  # everything queued before it has been dealt with
    assert ran == []
    assert future.cancelled()


def test_pool_size_follows_config_after_first_use(one_thread: None) -> None:
    """Setting nthreads at process level after the pool was used resizes it: N jobs overlap, no more."""
    ks.extension(nthreads=3)
    assert thread_pool.size == 3
    running: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        time.sleep(0.1)
        with lock:
            running.pop()

    futures = [thread_pool.get().submit(job) for _ in range(6)]
    for f in futures:
        f.result(10)
    assert max(peak) == 3


def test_nthreads_in_app_code_warns_and_changes_nothing(one_thread: None, caplog: pytest.LogCaptureFixture) -> None:
    """nthreads is process-only: set inside a session it logs a warning and the pool keeps its size."""
    with activate(Session()), caplog.at_level(logging.WARNING, "kernelstate.config"):
        ks.extension(nthreads=7)
        assert ks.config.nthreads == 1
    assert thread_pool.size == 1
    assert any("nthreads" in r.getMessage() and "process-only" in r.getMessage() for r in caplog.records)


def test_pool_size_default_rule() -> None:
    """None and 0 mean min(32, CPUs + 4)."""
    assert pool_size(None) == pool_size(0) >= 5
    assert pool_size(2) == 2


def test_async_watcher_runs_as_a_session_task_and_is_cancelled_on_destroy(caplog: pytest.LogCaptureFixture) -> None:
    """An async .param.watch callback runs with its session current, is logged with its id, and dies with it."""
    install()
    seen: list[str] = []

    async def main() -> None:
        session = Session(loop=asyncio.get_running_loop())
        slider = ks.widgets.IntSlider(start=0, end=10)
        started = asyncio.Event()

        async def slow(event: Any) -> None:
            seen.append(ks.state.session_id)
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        async def broken(event: Any) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("async watcher broke")

        slider.param.watch(slow, "value")
        slider.param.watch(broken, "value")
        with activate(session):
            slider.value = 3
        await asyncio.wait_for(started.wait(), 5)
        assert session.busy
        await asyncio.sleep(0.05)
        session.destroy()
        await asyncio.sleep(0.05)
        assert seen == [session.id, "cancelled"]
        assert any("async watcher broke" in (r.exc_text or "") + str(r.exc_info) and f"session={session.id}" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())


def test_async_on_click_after_destroy_does_not_start() -> None:
    """A coroutine callback triggered for a destroyed session never starts."""
    install()
    ran: list[int] = []

    async def main() -> None:
        session = Session(loop=asyncio.get_running_loop())
        button = ks.widgets.Button()

        async def clicked(event: Any) -> None:
            ran.append(1)

        button.on_click(clicked)
        session.destroy()
        with activate(session):
            button.clicks += 1
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert ran == []


def test_exception_handler_runs_in_the_failing_session(ks_clock: FakeClock, handler: list[tuple[str, str]],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """After logging, the handler is called with the exception, in the session whose callback failed."""
    session = Session(clock=ks_clock)

    def boom() -> None:
        raise ValueError("periodic boom")

    with activate(session):
        ks.state.add_periodic_callback(boom, period=10, count=1)
    with caplog.at_level(logging.ERROR):
        ks_clock.advance(20)
    assert handler == [(session.id, "ValueError('periodic boom')")]
    assert any(f"session={session.id}" in r.getMessage() for r in caplog.records)


def test_per_session_exception_handler_wins(ks_clock: FakeClock, handler: list[tuple[str, str]]) -> None:
    """A handler set inside a session applies to that session only."""
    mine: list[str] = []
    session, other = Session(clock=ks_clock), Session(clock=ks_clock)
    with activate(session):
        ks.config.exception_handler = lambda exc: mine.append(str(exc))
        ks.state.add_periodic_callback(lambda: 1 / 0, period=10, count=1)
    with activate(other):
        ks.state.add_periodic_callback(lambda: {}["missing"], period=10, count=1)
    ks_clock.advance(20)
    assert mine == ["division by zero"]
    assert [sid for sid, _ in handler] == [other.id]


def test_exception_handler_that_raises_is_logged_not_fatal(ks_clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A failing handler is logged; the callback keeps its schedule."""
    session = Session(clock=ks_clock)
    calls: list[int] = []

    def bad_handler(exc: BaseException) -> None:
        raise KeyError("the handler broke")

    def boom() -> None:
        calls.append(1)
        raise ValueError("tick")

    with activate(session):
        ks.config.exception_handler = bad_handler
        ks.state.add_periodic_callback(boom, period=10)
    with caplog.at_level(logging.ERROR):
        ks_clock.advance(35)
    assert len(calls) == 3
    assert any("exception_handler" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)


def test_failing_task_goes_to_the_process_handler(ks_clock: FakeClock, handler: list[tuple[str, str]]) -> None:
    """Work outside any session (a named task) calls the process-level handler, with no session current."""
    kernel_id = ks.state.session_id

    def boom() -> None:
        raise RuntimeError("task boom")

    try:
        ks.state.schedule_task("issue14-handler", boom, at=ks_clock.now() + dt.timedelta(seconds=1))
        ks_clock.advance(2_000)
    finally:
        tasks.cancel("issue14-handler")
    assert handler == [(kernel_id, "RuntimeError('task boom')")]


def test_async_task_callback_is_tracked_logged_and_cancelled(handler: list[tuple[str, str]],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A coroutine task callback: its failure is logged (session=-) and handled; cancel_task cancels a running one."""
    events: list[str] = []

    async def slow() -> None:
        events.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def broken() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async task broke")

    async def main() -> None:
        ks.state.schedule_task("issue14-slow", slow, period=0.02)
        ks.state.schedule_task("issue14-broken", broken, at=dt.datetime.now() + dt.timedelta(seconds=0.02))
        for _ in range(250):
            if "started" in events and handler:
                break
            await asyncio.sleep(0.02)
        ks.state.cancel_task("issue14-slow")
        await asyncio.sleep(0.05)

    try:
        with caplog.at_level(logging.ERROR):
            asyncio.run(main())
    finally:
        tasks.cancel_all()
    assert "cancelled" in events
    assert [exc for _, exc in handler] == ["RuntimeError('async task broke')"]
    assert any("issue14-broken" in r.getMessage() and "session=-" in r.getMessage() for r in caplog.records)
