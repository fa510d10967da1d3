"""schedule_task: at / period / cron, idempotent names, cancel."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.session import Session
from kernelstate.tasks import parse_period, tasks
from kernelstate.testing import FakeClock

START = dt.datetime(2026, 1, 1, 0, 0, 0)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with FakeClock(START) as clock:
        yield clock
    tasks.cancel_all()


def test_period_strings() -> None:
    """Period strings use s/m/h/d/w units."""
    assert parse_period("10s") == dt.timedelta(seconds=10)
    assert parse_period("5m") == dt.timedelta(minutes=5)
    assert parse_period("1h") == dt.timedelta(hours=1)
    assert parse_period("1d") == dt.timedelta(days=1)
    assert parse_period("1w") == dt.timedelta(weeks=1)
    with pytest.raises(ValueError, match="10s"):
        parse_period("ten seconds")


def test_period_task_fires_every_period(clock: FakeClock) -> None:
    """A '10s' task fires at 10 s, 20 s, 30 s."""
    fired: list[dt.datetime] = []
    ks.state.schedule_task("every10", lambda: fired.append(clock.now()), period="10s")
    clock.advance(35_000)
    assert fired == [START + dt.timedelta(seconds=s) for s in (10, 20, 30)]


def test_at_datetime_fires_once(clock: FakeClock) -> None:
    """at=datetime fires exactly once at that time."""
    fired: list[dt.datetime] = []
    ks.state.schedule_task("once", lambda: fired.append(clock.now()), at=START + dt.timedelta(minutes=1))
    clock.advance(10 * 60_000)
    assert fired == [START + dt.timedelta(minutes=1)]


def test_at_with_period_starts_then_repeats(clock: FakeClock) -> None:
    """at= plus period= starts at `at` and repeats every period."""
    fired: list[dt.datetime] = []
    ks.state.schedule_task("start-then", lambda: fired.append(clock.now()), at=START + dt.timedelta(seconds=5), period="10s")
    clock.advance(26_000)
    assert fired == [START + dt.timedelta(seconds=s) for s in (5, 15, 25)]


def test_at_iterator_and_callable(clock: FakeClock) -> None:
    """at= may be an iterator of datetimes, or a callable returning one."""
    fired: list[str] = []
    times = [START + dt.timedelta(seconds=s) for s in (1, 3, 7)]
    ks.state.schedule_task("iter", lambda: fired.append("iter"), at=iter(times))
    ks.state.schedule_task("call", lambda: fired.append("call"), at=lambda: iter(times[:2]))
    clock.advance(10_000)
    assert fired.count("iter") == 3 and fired.count("call") == 2


def test_cron_fires_on_schedule(clock: FakeClock) -> None:
    """A cron expression fires at its matching minutes."""
    fired: list[dt.datetime] = []
    ks.state.schedule_task("cron", lambda: fired.append(clock.now()), cron="*/15 * * * *")
    clock.advance(61 * 60_000)
    assert fired == [START + dt.timedelta(minutes=m) for m in (15, 30, 45, 60)]


def test_same_name_is_idempotent(clock: FakeClock) -> None:
    """Scheduling an existing name does nothing (a served script may run many times)."""
    fired: list[str] = []
    first = ks.state.schedule_task("job", lambda: fired.append("a"), period="1s")
    second = ks.state.schedule_task("job", lambda: fired.append("b"), period="1s")
    assert first is second
    clock.advance(3_000)
    assert fired == ["a", "a", "a"]


def test_cancel(clock: FakeClock) -> None:
    """cancel_task stops a task; cancelling an unknown name returns False."""
    fired: list[int] = []
    ks.state.schedule_task("c", lambda: fired.append(1), period="1s")
    clock.advance(2_000)
    assert ks.state.cancel_task("c") is True
    clock.advance(5_000)
    assert fired == [1, 1]
    assert ks.state.cancel_task("c") is False


def test_task_survives_session_destroy_and_may_come_from_a_served_session(clock: FakeClock) -> None:
    """Tasks are process-wide: registered inside a session, they outlive it."""
    fired: list[int] = []
    session = Session(clock=clock)
    with activate(session):
        ks.state.schedule_task("from-app", lambda: fired.append(1), period="1s")
    session.destroy()
    clock.advance(3_000)
    assert fired == [1, 1, 1]


def test_failing_task_keeps_schedule(clock: FakeClock) -> None:
    """A task that raises is logged and still fires next time."""
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("nope")

    ks.state.schedule_task("boom", boom, period="1s")
    clock.advance(3_000)
    assert len(calls) == 3


def test_invalid_arguments(clock: FakeClock) -> None:
    """Clear errors for missing or conflicting schedules."""
    with pytest.raises(ValueError, match="needs at=, period= or cron="):
        ks.state.schedule_task("x", lambda: None)
    with pytest.raises(ValueError, match="invalid cron"):
        ks.state.schedule_task("y", lambda: None, cron="not a cron")
