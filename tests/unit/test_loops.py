"""loops.running_loop and loops.SingleFlight: the helpers written once for the whole package."""
from __future__ import annotations

import asyncio

import pytest

from kernelstate.loops import SingleFlight, running_loop


def test_running_loop_is_none_outside_a_loop() -> None:
    assert running_loop() is None

    async def inside() -> bool:
        return running_loop() is asyncio.get_running_loop()

    assert asyncio.run(inside())


def test_single_flight_runs_a_job_once_per_key_and_shares_failures() -> None:
    calls: list[str] = []

    async def job(key: str) -> str:
        calls.append(key)
        await asyncio.sleep(0.01)
        if key == "bad":
            raise LookupError(key)
        return key.upper()

    async def main() -> None:
        flight: SingleFlight[str, str] = SingleFlight()
        a, b, c = await asyncio.gather(*(flight.run(k, lambda k=k: job(k)) for k in ("x", "x", "y")))
        assert (a, b, c) == ("X", "X", "Y") and calls == ["x", "y"]
        results = await asyncio.gather(flight.run("bad", lambda: job("bad")), flight.run("bad", lambda: job("bad")),
                                       return_exceptions=True)
        assert all(isinstance(r, LookupError) for r in results) and calls.count("bad") == 1
        assert flight.running("x") is None
        assert await flight.run("x", lambda: job("x")) == "X" and calls.count("x") == 2  # free again

    asyncio.run(main())


def test_single_flight_needs_a_running_loop() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def one() -> int:
        return 1

    coro = flight.run("k", one)
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()
