"""schedule_task: at / period / cron, idempotent names, cancel."""
from __future__ import annotations

import asyncio
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


# -- issue 14: one-shot tasks, at= forms, validation, loops -----------------------------------------


def test_finished_one_shot_task_frees_its_name(clock: FakeClock) -> None:
    """After an at= task's last run, cancel_task reports nothing and the same name can be scheduled again."""
    fired: list[str] = []
    ks.state.schedule_task("oneshot", lambda: fired.append("first"), at=START + dt.timedelta(seconds=1))
    clock.advance(2_000)
    assert fired == ["first"]
    assert "oneshot" not in tasks.names()
    assert ks.state.cancel_task("oneshot") is False
    ks.state.schedule_task("oneshot", lambda: fired.append("second"), at=START + dt.timedelta(seconds=5))
    clock.advance(5_000)
    assert fired == ["first", "second"]


def test_at_iterable_task_is_dropped_when_used_up(clock: FakeClock) -> None:
    """An at= list's task is gone once its last time has run."""
    ks.state.schedule_task("twice", lambda: None, at=[START + dt.timedelta(seconds=s) for s in (1, 2)])
    clock.advance(1_500)
    assert "twice" in tasks.names()
    clock.advance(1_000)
    assert "twice" not in tasks.names()


def test_at_callable_returning_the_next_datetime(clock: FakeClock) -> None:
    """at=f(now) -> datetime is asked again after each run; None ends the task."""
    fired: list[dt.datetime] = []
    asked: list[dt.datetime] = []

    def every_ten_seconds_three_times(now: dt.datetime) -> dt.datetime | None:
        asked.append(now)
        return now + dt.timedelta(seconds=10) if len(asked) <= 3 else None

    ks.state.schedule_task("asker", lambda: fired.append(clock.now()), at=every_ten_seconds_three_times)
    clock.advance(60_000)
    assert fired == [START + dt.timedelta(seconds=s) for s in (10, 20, 30)]
    assert "asker" not in tasks.names()


def test_at_callable_without_arguments_returning_a_datetime(clock: FakeClock) -> None:
    """The tutorial's form: a function (no arguments) returning one datetime runs once."""
    fired: list[dt.datetime] = []
    ks.state.schedule_task("tomorrow", lambda: fired.append(clock.now()), at=lambda: START + dt.timedelta(days=1))
    clock.advance(3 * 86_400_000)
    assert fired == [START + dt.timedelta(days=1)]
    assert "tomorrow" not in tasks.names()


def test_timezone_aware_at_is_local_time(clock: FakeClock) -> None:
    """An aware datetime is converted to local wall-clock time."""
    fired: list[dt.datetime] = []
    local = START + dt.timedelta(minutes=5)
    aware = local.astimezone(dt.UTC)
    ks.state.schedule_task("aware", lambda: fired.append(clock.now()), at=aware)
    clock.advance(10 * 60_000)
    assert fired == [local]


@pytest.mark.parametrize("bad", [
    {"at": "2026-01-01 00:05"},
    {"at": dt.date(2026, 1, 2)},
    {"at": [dt.date(2026, 1, 2)]},
    {"at": lambda now: "soon"},
    {"period": "ten seconds"},
    {"cron": "every day"},
])
def test_invalid_schedule_raises_before_the_name_is_taken(clock: FakeClock, bad: dict[str, object]) -> None:
    """A bad at=/period=/cron= raises at once; a corrected retry with the same name then runs."""
    with pytest.raises((TypeError, ValueError)):
        ks.state.schedule_task("retry", lambda: None, **bad)  # type: ignore[arg-type]
    assert "retry" not in tasks.names()
    fired: list[int] = []
    ks.state.schedule_task("retry", lambda: fired.append(1), at=START + dt.timedelta(seconds=1))
    clock.advance(2_000)
    assert fired == [1]


def test_task_is_replaced_when_its_event_loop_has_stopped() -> None:
    """A task scheduled on a loop that has since stopped is replaced by the next schedule_task of its name."""
    first: list[int] = []
    second: list[int] = []

    async def schedule_then_stop() -> None:
        ks.state.schedule_task("loop-bound", lambda: first.append(1), period=0.02)
        await asyncio.sleep(0.1)

    async def schedule_again() -> None:
        ks.state.schedule_task("loop-bound", lambda: second.append(1), period=0.02)
        for _ in range(250):
            if second:
                return
            await asyncio.sleep(0.02)

    try:
        asyncio.run(schedule_then_stop())
        assert first, "the task never ran on its first loop"
        asyncio.run(schedule_again())
        assert second, "the task scheduled on a new loop never ran"
    finally:
        tasks.cancel_all()
