"""The scenarios: each drives one running server and returns plain numbers.

Every loop is bounded in count and in time (:func:`run_pool` stops at its
deadline, every protocol step has a timeout). Latencies are reported in ms as
``{"n", "p50", "p95", "p99", "mean", "min", "max"}`` (see :mod:`.stats`);
server CPU is user+system time of the server process tree over a phase,
divided by the operations in that phase, so it includes background work.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

from .protocol import BokehClient, Message, http_get
from .servers import ServerProcess
from .stats import slope, summarize

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much load each scenario applies (see ``FULL`` and ``QUICK``)."""

    concurrency: int = 8
    html_n: int = 100
    html_warmup: int = 5
    setup_n1: int = 40
    setup_n8: int = 100
    pull_n: int = 200
    rt_warmup: int = 10
    rt_slider1: int = 200
    rt_button1: int = 150
    rt_n8: int = 200
    mem_levels: tuple[int, ...] = (50, 100, 200)
    mem_cycles: int = 3
    mem_cycle_n: int = 100
    periodic_sessions: int = 50
    periodic_window_s: float = 10.0
    periodic_destroy_wait_s: float = 15.0
    stream_sessions: int = 20
    stream_window_s: float = 10.0
    phase_limit_s: float = 90.0


FULL = Sizes()
QUICK = Sizes(
    html_n=20, html_warmup=2, setup_n1=8, setup_n8=16, pull_n=20, rt_warmup=3, rt_slider1=20, rt_button1=20, rt_n8=16,
    mem_levels=(20,), mem_cycles=1, mem_cycle_n=20, periodic_sessions=10, periodic_window_s=1.5,
    periodic_destroy_wait_s=5.0, stream_sessions=4, stream_window_s=1.5, phase_limit_s=20.0,
)

# session expiry used by the memory and periodic scenarios (milliseconds)
LIFETIME_MS = 1000
CHECK_MS = 500
EXPIRY_FLAGS = ("--unused-session-lifetime", str(LIFETIME_MS), "--check-unused-sessions", str(CHECK_MS))


async def run_pool(
    n: int, concurrency: int, fn: Callable[[int], Awaitable[T]], limit_s: float, max_errors: int = 10
) -> tuple[list[T], list[str], float]:
    """Run ``fn(i)`` for ``i < n`` on ``concurrency`` workers, bounded by time and errors.

    Returns:
        The results, up to a few error messages, and the wall time in seconds.
    """
    results: list[T] = []
    errors: list[str] = []
    todo = iter(range(n))
    deadline = perf_counter() + limit_s

    async def worker() -> None:
        for i in todo:
            if perf_counter() > deadline or len(errors) >= max_errors:
                return
            try:
                results.append(await fn(i))
            except Exception as exc:  # noqa: BLE001 - recorded in the results, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    t0 = perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, errors, perf_counter() - t0


def _rate(count: int, wall_s: float) -> float | None:
    return round(count / wall_s, 2) if wall_s > 0 else None


def _cpu_ms_per(srv: ServerProcess, cpu0: float, count: int) -> float:
    return round((srv.cpu_s() - cpu0) * 1e3 / max(count, 1), 3)


# -- 1. first HTML -------------------------------------------------------------


async def html(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """Cold first GET, then GETs from 1 and from ``concurrency`` clients.

    Each GET is a new TCP connection, as a new visitor's would be.
    """
    first = await http_get(srv.port, srv.path)
    out: dict[str, Any] = {
        "cold_ms": round(first.total_s * 1e3, 3),
        "status": first.status,
        "page_bytes": len(first.body),
    }
    for _ in range(sizes.html_warmup):
        await http_get(srv.port, srv.path)
    for clients in (1, sizes.concurrency):
        cpu0 = srv.cpu_s()

        async def one(_: int) -> float:
            response = await http_get(srv.port, srv.path)
            if response.status != 200:
                raise RuntimeError(f"GET {srv.path} -> HTTP {response.status}")
            return response.total_s

        times, errors, wall = await run_pool(sizes.html_n, clients, one, sizes.phase_limit_s)
        out[f"clients{clients}"] = {
            "total_ms": summarize(times),
            "req_per_s": _rate(len(times), wall),
            "server_cpu_ms_per_req": _cpu_ms_per(srv, cpu0, len(times)),
            "errors": len(errors),
            "error_samples": errors[:3],
        }
    return out


# -- 2. session establishment --------------------------------------------------


async def setup(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """Full session establishment (GET, WS+ACK, PULL-DOC, close) from 1 and N clients."""
    probe = BokehClient(srv.port, srv.path)
    await probe.establish()
    out: dict[str, Any] = {
        "doc_bytes": probe.doc_bytes,
        "found_slider": probe.slider_id is not None,
        "found_button": probe.button_id is not None,
    }
    # The PULL-DOC reply by itself: one tab pulls its document again and again (issue 20's row).
    cpu0, pulls = srv.cpu_s(), []
    for _ in range(sizes.pull_n):
        t0 = perf_counter()
        await probe.pull()
        pulls.append(perf_counter() - t0)
    out["pull_repeat"] = {"reply_ms": summarize(pulls), "server_cpu_ms_per_reply": _cpu_ms_per(srv, cpu0, len(pulls))}
    await probe.close()
    for clients, n in ((1, sizes.setup_n1), (sizes.concurrency, sizes.setup_n8)):
        cpu0 = srv.cpu_s()

        async def one(_: int) -> dict[str, float]:
            client = BokehClient(srv.port, srv.path)
            try:
                return await client.establish()
            finally:
                await client.close()

        steps, errors, wall = await run_pool(n, clients, one, sizes.phase_limit_s)
        out[f"clients{clients}"] = {
            "sessions_per_s": _rate(len(steps), wall),
            "total_ms": summarize([s["total"] for s in steps]),
            "get_ms": summarize([s["get"] for s in steps]),
            "ws_ack_ms": summarize([s["ws_ack"] for s in steps]),
            "pull_ms": summarize([s["pull"] for s in steps]),
            "server_cpu_ms_per_session": _cpu_ms_per(srv, cpu0, len(steps)),
            "errors": len(errors),
            "error_samples": errors[:3],
        }
    return out


# -- 3. interaction round trip -------------------------------------------------


async def _drive(clients: list[BokehClient], kind: str, total: int, limit_s: float) -> tuple[list[float], str | None]:
    per_client = max(1, total // len(clients))
    deadline = perf_counter() + limit_s
    times: list[float] = []

    async def loop(k: int, client: BokehClient) -> None:
        value = 1000 * (k + 1)
        for _ in range(per_client):
            if perf_counter() > deadline:
                return
            if kind == "slider":
                value += 1
                times.append(await client.set_slider(value))
            else:
                times.append(await client.click())

    try:
        await asyncio.gather(*(loop(k, c) for k, c in enumerate(clients)))
    except Exception as exc:  # noqa: BLE001 - recorded in the results
        return times, f"{type(exc).__name__}: {exc}"[:300]
    return times, None


async def roundtrip(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """Slider PATCH-DOC and button click, each until the pane's patch comes back.

    Slider values never repeat within a session, so every change is a real one.
    """
    out: dict[str, Any] = {}
    for n_sessions in (1, sizes.concurrency):
        clients = [BokehClient(srv.port, srv.path) for _ in range(n_sessions)]
        for client in clients:
            await client.establish()
        entry: dict[str, Any] = {}
        for kind in ("slider", "button"):
            # warm-up round trips use values far from the timed ones
            for k, client in enumerate(clients):
                for i in range(sizes.rt_warmup):
                    if kind == "slider":
                        await client.set_slider(90000 + 100 * k + i)
                    else:
                        await client.click()
            if n_sessions == 1:
                total = sizes.rt_slider1 if kind == "slider" else sizes.rt_button1
            else:
                total = sizes.rt_n8
            cpu0 = srv.cpu_s()
            t0 = perf_counter()
            times, error = await _drive(clients, kind, total, sizes.phase_limit_s)
            wall = perf_counter() - t0
            entry[kind] = {
                "rtt_ms": summarize(times),
                "per_s": _rate(len(times), wall),
                "server_cpu_ms_per_rt": _cpu_ms_per(srv, cpu0, len(times)),
                "error": error,
            }
        out[f"sessions{n_sessions}"] = entry
        await asyncio.gather(*(c.close() for c in clients))
    return out


# -- 4. memory -------------------------------------------------------------------


async def open_sessions(
    srv: ServerProcess, n: int, sizes: Sizes, on_message: Callable[[Message], None] | None = None
) -> tuple[list[BokehClient], list[str]]:
    """Establish ``n`` sessions (``concurrency`` at a time) and keep them open."""

    async def one(_: int) -> BokehClient:
        client = BokehClient(srv.port, srv.path, on_message=on_message)
        await client.establish()
        return client

    clients, errors, _ = await run_pool(n, sizes.concurrency, one, max(sizes.phase_limit_s, 60.0))
    return clients, errors


async def live_sessions(srv: ServerProcess) -> int | None:
    """The server's live-session count from its liveness endpoint, if it has one."""
    if srv.target.liveness_path is None:
        return None
    try:
        response = await http_get(srv.port, srv.target.liveness_path, timeout_s=5)
        data = json.loads(response.body)
    except (OSError, ValueError, TimeoutError):
        return None
    return _find_session_count(data)


def _find_session_count(data: Any) -> int | None:
    if isinstance(data, dict):
        for key, value in data.items():
            if "session" in key.lower() and isinstance(value, int) and not isinstance(value, bool):
                return value
        for value in data.values():
            found = _find_session_count(value)
            if found is not None:
                return found
    return None


async def wait_expiry(srv: ServerProcess, limit_s: float = 10.0) -> float:
    """Wait until closed sessions have expired; seconds waited.

    With a liveness endpoint, poll until it reports no live sessions;
    otherwise wait out the lifetime plus two check intervals.
    """
    t0 = perf_counter()
    await asyncio.sleep((LIFETIME_MS + CHECK_MS) / 1000)
    if srv.target.liveness_path is None:
        await asyncio.sleep(CHECK_MS / 1000)
        return perf_counter() - t0
    while perf_counter() - t0 < limit_s:
        if await live_sessions(srv) in (0, None):
            break
        await asyncio.sleep(0.1)
    return perf_counter() - t0


async def _rss(srv: ServerProcess, settle_s: float = 0.5) -> float:
    await asyncio.sleep(settle_s)
    return round(srv.rss_mb(), 2)


async def memory(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """RSS idle, with sessions held open, after expiry, and over create/destroy cycles."""
    out: dict[str, Any] = {"rss_start_mb": round(srv.rss_mb(), 2)}
    # one session first, so lazy imports and caches are loaded before "idle"
    warm, _ = await open_sessions(srv, 1, sizes)
    await asyncio.gather(*(c.close() for c in warm))
    await wait_expiry(srv)
    idle = await _rss(srv)
    out["rss_idle_mb"] = idle
    held: list[BokehClient] = []
    points = [(0.0, idle)]
    errors: list[str] = []
    for level in sizes.mem_levels:
        more, errs = await open_sessions(srv, level - len(held), sizes)
        held += more
        errors += errs
        rss = await _rss(srv)
        points.append((float(len(held)), rss))
        out[f"rss_{level}_mb"] = rss
    out["live_sessions_reported"] = await live_sessions(srv)
    fit = slope(points)
    out["mb_per_session"] = round(fit, 4) if fit is not None else None
    await asyncio.gather(*(c.close() for c in held))
    out["expiry_wait_s"] = round(await wait_expiry(srv), 2)
    base = await _rss(srv)
    out["rss_after_expiry_mb"] = base
    out["live_sessions_after_expiry"] = await live_sessions(srv)
    cycles = []
    for _ in range(sizes.mem_cycles):
        opened, errs = await open_sessions(srv, sizes.mem_cycle_n, sizes)
        errors += errs
        peak = await _rss(srv, 0.2)
        await asyncio.gather(*(c.close() for c in opened))
        await wait_expiry(srv)
        cycles.append({"opened": len(opened), "rss_peak_mb": peak, "rss_after_mb": await _rss(srv),
                       "live_after": await live_sessions(srv)})
    out["cycles"] = cycles
    if cycles:
        out["growth_mb_per_cycle"] = round((cycles[-1]["rss_after_mb"] - base) / len(cycles), 3)
    out["errors"] = len(errors)
    out["error_samples"] = errors[:3]
    return out


# -- 5. periodic callbacks -------------------------------------------------------


def read_tick_log(path: str) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Ticks, creation and destruction times (wall-clock seconds) by session id."""
    ticks: dict[str, list[float]] = {}
    created: dict[str, float] = {}
    destroyed: dict[str, float] = {}
    if not os.path.exists(path):
        return ticks, created, destroyed
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 3 or not parts[2].isdigit():
                continue
            kind, sid, t = parts[0], parts[1], int(parts[2]) / 1e9
            if kind == "T":
                ticks.setdefault(sid, []).append(t)
            elif kind == "C":
                created[sid] = t
            elif kind == "D":
                destroyed[sid] = t
    return ticks, created, destroyed


async def periodic(srv: ServerProcess, sizes: Sizes, tick_log: str, period_ms: float = 100.0) -> dict[str, Any]:
    """N sessions each ticking every ``period_ms``: achieved rate, jitter, clean teardown."""
    arrivals: dict[int, list[float]] = {}

    def recorder(client_id: int) -> Callable[[Message], None]:
        times = arrivals.setdefault(client_id, [])
        return lambda m: times.append(m.arrived) if m.msgtype == "PATCH-DOC" and "tick=" in m.content else None

    clients: list[BokehClient] = []
    errors: list[str] = []
    open_until = perf_counter() + sizes.phase_limit_s
    for i in range(sizes.periodic_sessions):
        if perf_counter() > open_until:
            errors.append(f"opened only {len(clients)} sessions in {sizes.phase_limit_s} s")
            break
        client = BokehClient(srv.port, srv.path, on_message=recorder(i))
        try:
            await client.establish()
            clients.append(client)
        except Exception as exc:  # noqa: BLE001 - recorded in the results
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    await asyncio.sleep(1.0)
    w0_wall, w0 = time.time(), perf_counter()
    await asyncio.sleep(sizes.periodic_window_s)
    w1_wall, w1 = time.time(), perf_counter()
    await asyncio.gather(*(c.close() for c in clients))
    closed_wall = time.time()
    deadline = perf_counter() + (LIFETIME_MS + CHECK_MS) / 1000 + sizes.periodic_destroy_wait_s
    while perf_counter() < deadline:
        ticks, _, destroyed = read_tick_log(tick_log)
        if ticks and all(sid in destroyed for sid in ticks):
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)  # anything logged after a session's D line is a tick after destroy
    ticks, created, destroyed = read_tick_log(tick_log)

    period_s = period_ms / 1000
    server_intervals: list[float] = []
    in_window = 0
    for ts in ticks.values():
        window = [t for t in ts if w0_wall <= t <= w1_wall]
        in_window += len(window)
        server_intervals += [b - a for a, b in zip(window, window[1:])]
    client_intervals: list[float] = []
    for ts in arrivals.values():
        window = [t for t in ts if w0 <= t <= w1]
        client_intervals += [b - a for a, b in zip(window, window[1:])]
    asked = len(clients) / period_s
    achieved = in_window / (w1_wall - w0_wall)
    close_to_destroy = [destroyed[s] - closed_wall for s in ticks if s in destroyed]
    allowed_s = (LIFETIME_MS + CHECK_MS) / 1000
    return {
        "sessions": len(clients),
        "asked_ticks_per_s": round(asked, 1),
        "ticks_per_s": round(achieved, 1),
        "ticks_pct": round(100 * achieved / asked, 1) if asked else None,
        "interval_ms": summarize(server_intervals),
        "abs_jitter_ms": summarize([abs(x - period_s) for x in server_intervals]),
        "client_interval_ms": summarize(client_intervals),
        "sessions_logged": len(ticks),
        "sessions_created_logged": len(created),
        "sessions_destroyed": sum(1 for s in ticks if s in destroyed),
        "sessions_not_destroyed": sum(1 for s in ticks if s not in destroyed),
        "destroyed_within_lifetime_plus_check": sum(1 for d in close_to_destroy if d <= allowed_s),
        "close_to_destroy_s": summarize(close_to_destroy, scale=1.0),
        "ticks_after_ws_close": sum(1 for ts in ticks.values() for t in ts if t > closed_wall),
        "ticks_after_destroy": sum(
            1 for sid, ts in ticks.items() if sid in destroyed for t in ts if t > destroyed[sid]
        ),
        "errors": len(errors),
        "error_samples": errors[:3],
    }
