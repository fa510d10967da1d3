"""Issue 18 items 4-5 on one process (no store): the default behaves as a single process, and bad settings say so."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.cli import build_parser
from kernelstate.cluster import configure, coordinator
from kernelstate.cluster.errors import NotShareableError, StoreURLError, TamperedValueError, ValueTooLargeError
from kernelstate.cluster.signing import Codec
from kernelstate.cluster.topics import subscriber_count
from kernelstate.errors import ConfigError, NoEventLoopError
from kernelstate.server.options import ServeOptions
from kernelstate.testing import ProtocolClient

from .cluster_support import wait_until


def test_publish_reaches_each_session_in_its_own_context_and_ends_with_it(ks_server: Any) -> None:
    received: list[tuple[str, Any, bool]] = []
    sessions: list[ks.Session] = []

    def app() -> Any:
        out = ks.pane.Str("nothing yet")
        session = ks.state.session
        sessions.append(session)

        def got(value: Any) -> None:
            on_loop = asyncio.get_running_loop() is session.event_loop()
            received.append((ks.state.session_id, value, on_loop))
            out.object = f"got {value['n']}"

        ks.state.subscribe("local-news", got)
        return out

    server = ks_server(app)
    assert coordinator().shared is False

    async def main() -> list[str]:
        tabs = [ProtocolClient(server.url) for _ in range(2)]
        await asyncio.gather(*(tab.open() for tab in tabs))
        ids = [tab.session_id for tab in tabs]
        ks.state.publish("local-news", {"n": 1})   # from outside any session
        await asyncio.gather(*(tab.wait_for(lambda tab=tab: "got 1" in tab.text()) for tab in tabs))
        await tabs[1].close()
        server.loop.call_soon_threadsafe(server.manager.destroy, ids[1])
        closed = next(session for session in sessions if session.id == ids[1])   # tabs opened concurrently
        await asyncio.to_thread(lambda: _wait(lambda: closed.destroyed))
        assert subscriber_count("local-news") == 1
        ks.state.publish("local-news", {"n": 2})
        await tabs[0].wait_for(lambda: "got 2" in tabs[0].text())
        await tabs[0].close()
        return ids

    ids = asyncio.run(main())
    assert sorted(received[:2], key=lambda r: r[0]) == sorted([(sid, {"n": 1}, True) for sid in ids])
    assert received[2:] == [(ids[0], {"n": 2}, True)], "a destroyed session still received a message"


def _wait(predicate: Any) -> None:
    wait_until(predicate, 10, "the closed tab's session is destroyed")


def test_process_wide_subscription_lasts_until_cancelled() -> None:
    got: list[Any] = []
    sub = ks.state.subscribe("process-topic", got.append)   # outside a served session: the process's
    ks.state.publish("process-topic", b"raw")
    sub.cancel()
    ks.state.publish("process-topic", b"again")
    assert got == [b"raw"] and not sub.active


def test_shared_cache_on_one_process_is_the_process_cache() -> None:
    calls: list[int] = []
    key = f"local-shared-{threading.get_ident()}"
    first = ks.state.as_cached(key, lambda: calls.append(1) or {"v": 1}, shared=True)
    assert ks.state.as_cached(key, lambda: calls.append(1) or {"v": 2}, shared=True) == first == {"v": 1}
    assert calls == [1]


def test_signed_values_refuse_tampering_size_and_pickles() -> None:
    codec = Codec(b"key")
    blob = codec.dumps("cache:x", {"a": [1, 2]}, 100)
    assert codec.loads("cache:x", blob) == {"a": [1, 2]}
    with pytest.raises(TamperedValueError, match="signature does not match"):
        codec.loads("cache:x", blob[:-1] + b"]")
    with pytest.raises(TamperedValueError):
        codec.loads("cache:other", blob)   # not replayable under another name
    with pytest.raises(TamperedValueError):
        Codec(b"other key").loads("cache:x", blob)
    with pytest.raises(ValueTooLargeError, match="shared_value_max_bytes"):
        codec.dumps("cache:x", "x" * 200, 100)
    with pytest.raises(NotShareableError, match="only JSON values"):
        codec.dumps("cache:x", object(), 100)


def test_store_url_password_only_from_the_environment_and_redis_needs_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = build_parser().parse_args(["serve", "app.py", "--session-store", "redis://:hunter2@127.0.0.1:6379/0"])
    with pytest.raises(StoreURLError, match="KERNELSTATE_SESSION_STORE"):
        ServeOptions.from_argv(ns)
    ns = build_parser().parse_args(["serve", "app.py", "--session-store", "redis://127.0.0.1:6379/x"])
    with pytest.raises(StoreURLError, match="database must be a number"):
        ServeOptions.from_argv(ns)
    monkeypatch.delenv("KERNELSTATE_SECRET_KEY", raising=False)
    ns = build_parser().parse_args(["serve", "app.py", "--session-store", "redis://127.0.0.1:6379/0"])
    with pytest.raises(ConfigError, match="needs KERNELSTATE_SECRET_KEY"):
        ServeOptions.from_argv(ns)   # so `kernelstate serve` says so and exits 2, before anything starts
    with pytest.raises(ConfigError, match="needs KERNELSTATE_SECRET_KEY"):
        configure("redis://127.0.0.1:1/0")
    assert coordinator().url == "local"


def test_offload_needs_a_target_it_knows() -> None:
    with pytest.raises(ConfigError, match="--dask-scheduler"):
        ks.state.execute(lambda: 1, schedule="dask")
    with pytest.raises(ValueError, match="schedule must be"):
        ks.state.execute(lambda: 1, schedule="elsewhere")
    with ThreadPoolExecutor(1) as pool, pytest.raises(NoEventLoopError, match="no running event loop|there is none"):
        ks.state.execute(lambda: 1, schedule=pool)   # a plain script: no loop to deliver the result on
