"""Session slots, pending sessions and rate-limited logging (kernelstate.web.limits/pending,
kernelstate.server.listening): the rules, without a server."""
from __future__ import annotations

import logging

import pytest

from kernelstate.errors import ConfigError
from kernelstate.loading import AppSpec
from kernelstate.server.listening import RateLimitedLog
from kernelstate.server.options import ServeOptions
from kernelstate.session import RequestInfo
from kernelstate.web.limits import (
    SessionLimitError,
    SlotCounter,
    client_key,
    sessions_per_client,
)
from kernelstate.web.pending import PendingSession, PendingStore, request_bytes


def test_client_key_groups_ipv6_by_64_and_unmaps_ipv4() -> None:
    assert client_key("127.0.0.1") == "127.0.0.1"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.7") == "10.0.0.7"
    assert client_key(None) == client_key("") == ""


def test_sessions_per_client_defaults() -> None:
    assert sessions_per_client(None, None) == 100
    assert sessions_per_client(None, 40) == 20
    assert sessions_per_client(None, 1) == 1
    assert sessions_per_client(0, 40) is None
    assert sessions_per_client(7, None) == 7


def test_slot_counter_refuses_beyond_either_limit_and_says_which() -> None:
    slots = SlotCounter(max_total=3, max_per_client=2)
    slots.take("a")
    slots.take("a")
    with pytest.raises(SessionLimitError, match=r"your address \(a\) is at its limit of 2 sessions"):
        slots.take("a")
    slots.take("b")
    with pytest.raises(SessionLimitError, match="the server is at its limit of 3 sessions"):
        slots.take("c")
    slots.release("a")
    slots.take("c")
    assert (slots.total, slots.held_by("a"), slots.held_by("c")) == (3, 1, 1)


def pending(size_pad: int, slot_until: float, expires: float = 100.0) -> PendingSession:
    info = RequestInfo(headers={"X-Pad": "x" * size_pad})
    return PendingSession(AppSpec("/app", "app"), info, "c", expires, request_bytes(info), slot_until)


def test_pending_store_drops_oldest_dormant_first_then_refuses_fresh() -> None:
    one = request_bytes(RequestInfo(headers={"X-Pad": "x" * 1000}))
    store = PendingStore(max_count=100, max_bytes=3 * one, max_entry_bytes=4 * one)
    assert store.add("d1", pending(1000, 0.0)) and store.add("d2", pending(1000, 0.0))
    assert store.add("f1", pending(1000, 10.0))
    assert store.add("f2", pending(1000, 10.0))       # room made by dropping d1, the oldest dormant
    assert store.pop("d1") is None and store.pop("d2") is not None
    assert store.add("f3", pending(1000, 10.0))
    with pytest.raises(SessionLimitError, match="waiting for their first connection"):
        store.add("f4", pending(1000, 10.0))          # only fresh entries left: refused, none dropped
    assert not store.add("big", pending(10 * 1000, 10.0))   # too large to keep at all
    assert len(store) == 3 and store.bytes == 3 * one


def test_pending_store_ends_windows_in_order() -> None:
    store = PendingStore()
    store.add("a", pending(10, 1.0, expires=100.0))
    store.add("b", pending(10, 1.0, expires=1.5))
    store.add("c", pending(10, 5.0))
    ended = store.end_windows(now=2.0)
    assert len(ended) == 2 and store.fresh_count == 1 and all(p.slot_until == 0.0 for p in ended)
    assert store.pop("a") is not None and store.pop("b") is None   # b's token had expired too


def test_rate_limited_log_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("kernelstate.test"), interval_s=3600)
    with caplog.at_level(logging.WARNING, "kernelstate.test"):
        for _ in range(1000):
            limited.warning("k", "cannot accept")
        limited.warning("other", "per client")
    assert [r.getMessage() for r in caplog.records] == ["cannot accept", "per client"]
    limited._state["k"] = (limited._state["k"][0] - 7200, limited._state["k"][1])
    with caplog.at_level(logging.WARNING, "kernelstate.test"):
        limited.warning("k", "cannot accept")
    assert caplog.records[-1].getMessage() == "cannot accept (999 more like this in the last 3600 s)"


@pytest.mark.parametrize(("option", "value", "says"), [
    ("max_sessions_per_client", -1, "max_sessions_per_client must be >= 0"),
    ("max_connections_per_client", -5, "max_connections_per_client must be >= 0"),
    ("first_connect_timeout_s", -1.0, "first_connect_timeout_s must be >= 0 seconds"),
    ("idle_connection_timeout_s", 0, "idle_connection_timeout_s must be > 0 seconds"),
    ("body_timeout_s", -3, "body_timeout_s must be > 0 seconds"),
])
def test_limit_options_are_validated(option: str, value: float, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        ServeOptions.from_kwargs(**{option: value})
    assert repr(value) in str(err.value)
