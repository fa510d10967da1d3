"""Session lifecycle, hooks, request info and the ks.state facade."""
from __future__ import annotations

import asyncio
import threading

import pytest

import kernelstate as ks
from kernelstate.cache import Cache
from kernelstate.context import activate
from kernelstate.session import current_session
from kernelstate.session import Lifecycle, RequestInfo, Session, hooks, registry


def test_lifecycle_transitions() -> None:
    """created -> loaded -> disconnected -> reconnected -> destroyed."""
    s = Session()
    assert s.lifecycle is Lifecycle.CREATED and not s.loaded
    s.mark_loaded()
    assert s.lifecycle is Lifecycle.LOADED and s.loaded
    s.mark_disconnected()
    assert s.lifecycle is Lifecycle.DISCONNECTED
    s.mark_reconnected()
    assert s.lifecycle is Lifecycle.RECONNECTED
    s.destroy()
    assert s.lifecycle is Lifecycle.DESTROYED and s.document is None


def test_destroyed_hooks_run_once_even_if_one_raises() -> None:
    """Session hooks then global hooks run exactly once; a raising hook doesn't stop the rest."""
    s = Session()
    calls: list[str] = []

    def bad(ctx: Session) -> None:
        calls.append("bad")
        raise RuntimeError("hook failed")

    def good(ctx: Session) -> None:
        calls.append(f"good:{ctx.id == s.id}:{ks.state.session_id == s.id}")

    with activate(s):
        ks.state.on_session_destroyed(bad)
        ks.state.on_session_destroyed(good)
    s.destroy()
    s.destroy()
    assert calls == ["bad", "good:True:True"]


def test_global_destroyed_hook_applies_to_every_session() -> None:
    """on_session_destroyed outside a session registers for all sessions."""
    seen: list[str] = []

    def hook(ctx: Session) -> None:
        seen.append(ctx.id)

    ks.state.on_session_destroyed(hook)
    try:
        a, b = Session(), Session()
        a.destroy()
        b.destroy()
        assert seen == [a.id, b.id]
    finally:
        hooks.destroyed.remove(hook)


def test_request_values_through_state() -> None:
    """session_args/headers/cookies come from the session's request and reads are recorded."""
    req = RequestInfo(args={"city": [b"Paris"]}, headers={"User-Agent": "t"}, cookies={"user": "ann"}, path="/app")
    s = Session(req)
    with activate(s):
        assert ks.state.session_args["city"] == [b"Paris"]
        assert ks.state.headers["User-Agent"] == "t"
        assert ks.state.cookies.get("user") == "ann"
        assert ks.state.curdoc is s.document
        assert ks.state.served is True
    assert ("args", "city") in s.request_reads and ("cookies", "user") in s.request_reads


def test_context_propagates_to_threads_and_tasks() -> None:
    """A coroutine inherits the session; a plain thread does not (use execute('thread'))."""
    s = Session()

    async def inner() -> str:
        return ks.state.session_id

    async def main() -> str:
        with activate(s):
            return await asyncio.create_task(inner())

    assert asyncio.run(main()) == s.id
    out: list[str] = []
    with activate(s):
        t = threading.Thread(target=lambda: out.append(current_session().kind))
        t.start()
        t.join()
    assert out == ["kernel"]


def test_session_info_tracks_created_rendered_ended() -> None:
    """session_info counts sessions and records their times."""
    before = ks.state.session_info["total"]
    s = Session(RequestInfo(path="/x"))
    registry.add(s, "/")
    s.mark_loaded()
    info = ks.state.session_info
    assert info["total"] == before + 1
    assert info["sessions"][s.id]["rendered"] is not None
    s.destroy()
    assert ks.state.session_info["sessions"][s.id]["ended"] is not None


def test_log_is_prefixed_with_session_id(caplog: pytest.LogCaptureFixture) -> None:
    """ks.state.log prefixes messages with the session id."""
    s = Session()
    with caplog.at_level("INFO", logger="kernelstate.state"), activate(s):
        ks.state.log("hello")
    assert f"session {s.id}: hello" in caplog.text
    with pytest.raises(ValueError, match="level"):
        ks.state.log("x", level="loud")


def test_as_cached_computes_once_under_concurrency() -> None:
    """Concurrent misses of one key compute once; kwargs are part of the key."""
    cache = Cache()
    calls: list[int] = []
    barrier = threading.Barrier(8)

    def slow(n: int) -> int:
        calls.append(n)
        return n * 2

    def worker() -> None:
        barrier.wait()
        assert cache.as_cached("k", slow, n=3) == 6

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [3]
    assert cache.as_cached("k", slow, n=4) == 8
    assert calls == [3, 4]


def test_as_cached_ttl_and_bound() -> None:
    """ttl expires an entry; the cache keeps at most cache_max_items."""
    cache = Cache()
    n = [0]

    def count() -> int:
        n[0] += 1
        return n[0]

    assert cache.as_cached("t", count, ttl=0) == 1
    assert cache.as_cached("t", count, ttl=0) == 2
    old = ks.config.process_value("cache_max_items")
    ks.config.set("cache_max_items", 5, process=True)
    try:
        for i in range(20):
            cache.as_cached(("bound", i), lambda i=i: i)
        assert len(cache) == 5
    finally:
        ks.config.set("cache_max_items", old, process=True)
