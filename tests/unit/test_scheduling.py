"""Periodic callbacks, execute and onload, driven by the FakeClock."""
from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.session import current_session
from kernelstate.errors import NoEventLoopError, SessionDestroyedError
from kernelstate.session import Session
from kernelstate.testing import FakeClock


def make_session(clock: FakeClock) -> Session:
    return Session(clock=clock)


def test_period_in_milliseconds(ks_clock: FakeClock) -> None:
    """A 100 ms callback ticks at 100, 200, 300 ms."""
    session = make_session(ks_clock)
    times: list[float] = []
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: times.append(ks_clock.monotonic_ms()), period=100)
    ks_clock.advance(350)
    assert times == [100, 200, 300]
    assert cb.counter == 3 and cb.running


def test_count_stops_after_n_ticks(ks_clock: FakeClock) -> None:
    """count=N stops the callback after N ticks."""
    session = make_session(ks_clock)
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: None, period=10, count=3)
    ks_clock.advance(1000)
    assert cb.counter == 3
    assert not cb.running


def test_timeout_is_milliseconds(ks_clock: FakeClock) -> None:
    """timeout=250 (ms) allows the ticks at 100 and 200 only."""
    session = make_session(ks_clock)
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: None, period=100, timeout=250)
    ks_clock.advance(1000)
    assert cb.counter == 2
    assert not cb.running


def test_stop_and_start(ks_clock: FakeClock) -> None:
    """stop() halts ticking; start() resumes one period later."""
    session = make_session(ks_clock)
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: None, period=100)
    ks_clock.advance(250)
    cb.stop()
    ks_clock.advance(500)
    assert cb.counter == 2 and not cb.running
    cb.start()
    ks_clock.advance(100)
    assert cb.counter == 3


def test_start_false_does_not_tick(ks_clock: FakeClock) -> None:
    """start=False creates a stopped callback."""
    session = make_session(ks_clock)
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: None, period=100, start=False)
    ks_clock.advance(500)
    assert cb.counter == 0 and not cb.running


def test_period_change_restarts_at_new_period(ks_clock: FakeClock) -> None:
    """Setting period restarts the schedule at the new period."""
    session = make_session(ks_clock)
    ticks: list[float] = []
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: ticks.append(ks_clock.monotonic_ms()), period=100)
    ks_clock.advance(150)
    cb.period = 300
    ks_clock.advance(700)
    assert ticks == [100, 450, 750]


def test_stop_from_inside_callback(ks_clock: FakeClock) -> None:
    """A callback can stop itself."""
    session = make_session(ks_clock)
    holder: dict[str, object] = {}

    def tick() -> None:
        holder["cb"].stop()  # type: ignore[attr-defined]

    with activate(session):
        holder["cb"] = ks.state.add_periodic_callback(tick, period=10)
    ks_clock.advance(100)
    assert holder["cb"].counter == 1  # type: ignore[attr-defined]


def test_exception_keeps_schedule_and_is_logged_with_session_id(ks_clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A raising callback keeps ticking; the failure is logged with the session id."""
    session = make_session(ks_clock)

    def boom() -> None:
        raise ValueError("boom")

    with activate(session):
        cb = ks.state.add_periodic_callback(boom, period=100)
    with caplog.at_level(logging.ERROR, logger="kernelstate.application"):
        ks_clock.advance(1000)
    assert cb.counter == 10 and cb.running
    assert any(session.id in r.getMessage() and r.exc_info for r in caplog.records)
    # rate limited: the first failure in full, the rest within a second are counted, not logged
    assert len(caplog.records) < 5


def test_destroy_stops_everything(ks_clock: FakeClock) -> None:
    """After destroy, no tick runs and nothing new can be scheduled."""
    session = make_session(ks_clock)
    ticks: list[int] = []
    with activate(session):
        cb = ks.state.add_periodic_callback(lambda: ticks.append(1), period=10)
    ks_clock.advance(50)
    session.destroy()
    session.destroy()  # idempotent
    ks_clock.advance(1000)
    assert len(ticks) == 5
    assert not cb.running
    assert ks_clock.pending == 0
    with activate(session), pytest.raises(SessionDestroyedError):
        ks.state.add_periodic_callback(lambda: None, period=10)


def test_callback_runs_with_its_session_current(ks_clock: FakeClock) -> None:
    """Each tick sees its own session through ks.state."""
    a, b = make_session(ks_clock), make_session(ks_clock)
    seen: list[tuple[str, str]] = []
    for s in (a, b):
        with activate(s):
            ks.state.add_periodic_callback(lambda s=s: seen.append((s.id, ks.state.session_id)), period=10, count=1)
    ks_clock.advance(10)
    assert sorted(seen) == sorted([(a.id, a.id), (b.id, b.id)])


def test_no_loop_raises_clear_error() -> None:
    """With the real clock and no running loop, add_periodic_callback raises instead of pretending."""
    session = Session()
    with activate(session), pytest.raises(NoEventLoopError, match="running event loop"):
        ks.state.add_periodic_callback(lambda: None, period=10)


def test_async_callback_on_real_loop() -> None:
    """An async periodic callback runs on the loop and is counted."""
    async def main() -> int:
        session = Session(loop=asyncio.get_running_loop())
        done = asyncio.Event()
        seen: list[str] = []

        async def tick() -> None:
            await asyncio.sleep(0)
            seen.append(ks.state.session_id)
            if len(seen) == 3:
                done.set()

        with activate(session):
            ks.state.add_periodic_callback(tick, period=10)
        await asyncio.wait_for(done.wait(), 5)
        session.destroy()
        assert set(seen) == {session.id}
        return len(seen)

    assert asyncio.run(main()) >= 3


def test_execute_thread_carries_session_context() -> None:
    """execute(schedule='thread') runs on a pool thread with the session current."""
    session = Session()
    with activate(session):
        future = ks.state.execute(lambda: (ks.state.session_id, threading.current_thread().name), schedule="thread")
    sid, thread_name = future.result(5)
    assert sid == session.id
    assert thread_name.startswith("kernelstate")


def test_execute_auto_on_loop_runs_now_and_next_tick_otherwise() -> None:
    """'auto' runs at once on the session's loop; True defers to the next tick; coroutines are awaited."""
    async def main() -> list[str]:
        session = Session(loop=asyncio.get_running_loop())
        order: list[str] = []

        async def coro() -> None:
            order.append(f"coro:{ks.state.session_id == session.id}")

        with activate(session):
            ks.state.execute(lambda: order.append("auto"))
            ks.state.execute(lambda: order.append("deferred"), schedule=True)
            ks.state.execute(coro)
            order.append("after")
        await asyncio.sleep(0.05)
        return order

    order = asyncio.run(main())
    assert order[:2] == ["auto", "after"]
    assert set(order[2:]) == {"deferred", "coro:True"}


def test_execute_from_thread_applies_on_loop() -> None:
    """A callback scheduled from a worker thread runs on the session's loop thread."""
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        session = Session(loop=loop)
        ran_on: list[threading.Thread] = []
        done = asyncio.Event()

        def on_loop() -> None:
            ran_on.append(threading.current_thread())
            done.set()

        def worker() -> None:
            ks.state.execute(on_loop)

        with activate(session):
            ks.state.execute(worker, schedule="thread")
        await asyncio.wait_for(done.wait(), 5)
        return ran_on[0] is threading.current_thread()

    assert asyncio.run(main())


def test_onload_queued_until_loaded_then_immediate(ks_clock: FakeClock) -> None:
    """onload waits for the render; registered after load it runs at once."""
    session = make_session(ks_clock)
    calls: list[str] = []
    with activate(session):
        ks.state.onload(lambda: calls.append(f"first:{ks.state.loaded}"))
    assert calls == []
    session.mark_loaded()
    with activate(session):
        ks.state.onload(lambda: calls.append("second"))
    session.mark_loaded()  # a second document_ready does not rerun the queue
    assert calls == ["first:True", "second"]


def test_onload_in_kernel_runs_at_once() -> None:
    """In a kernel (no served session) onload runs immediately."""
    calls: list[bool] = []
    ks.state.onload(lambda: calls.append(ks.state.served))
    assert calls == [False]


def test_busy_is_per_session(ks_clock: FakeClock) -> None:
    """busy is true only for the session running a callback."""
    a, b = make_session(ks_clock), make_session(ks_clock)
    seen: dict[str, bool] = {}

    def tick() -> None:
        seen["a"] = a.busy
        seen["b"] = b.busy

    with activate(a):
        ks.state.add_periodic_callback(tick, period=10, count=1)
    ks_clock.advance(10)
    assert seen == {"a": True, "b": False}
    assert not a.busy


def test_kernel_session_is_current_outside_served_sessions() -> None:
    """Outside any session ks.state talks to the kernel's session."""
    assert current_session().kind == "kernel"
    assert ks.state.served is False
    assert ks.state.session_args == {}
