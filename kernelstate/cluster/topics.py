"""``ks.state.publish`` / ``ks.state.subscribe``: messages to every subscriber, in every process.

A subscription belongs to the session that made it: its callback runs with
that session current, on that session's event loop, and it ends when the
session is destroyed (the session's scheduler owns it). Subscribed outside any
served session (a ``--setup`` script, a notebook cell), it belongs to the
process-wide kernel session and lasts as long as the process, unless cancelled.

``publish`` hands the message to the process's coordinator: on one process it
is delivered here at once (the value itself, not a copy); with a shared store
it goes through Redis and reaches every process, this one included, as JSON
(or bytes), signed. Delivery is at most once and in publish order per
publisher; a process that is not connected when a message is published misses
it (Redis pub/sub keeps no history). Through a machine-local ``sqlite:///``
store a message reaches the other processes within about 50 ms (they poll).
"""
from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..scheduling import callback_name
from .coordinator import coordinator

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["Subscription", "subscribe", "publish", "deliver", "subscriber_count"]

log = logging.getLogger("kernelstate.cluster")
_lock = threading.Lock()
_by_topic: dict[str, list[Subscription]] = {}


def _check_topic(topic: Any) -> str:
    if not isinstance(topic, str) or not topic or len(topic) > 200:
        raise ValueError(f"a topic must be a non-empty string of at most 200 characters; got {topic!r}")
    return topic


class Subscription:
    """One ``subscribe(topic, callback)``; ``cancel()`` ends it (so does destroying its session)."""

    def __init__(self, topic: str, callback: Callable[[Any], Any], session: Session) -> None:
        self.topic = topic
        self.callback = callback
        self.session_id = session.id
        self._session = weakref.ref(session)
        self.active = True
        self.received = 0

    def cancel(self) -> None:
        """Stop receiving messages (idempotent)."""
        self.active = False
        session = self._session()
        if session is not None:
            session.scheduler.disown(self)
        with _lock:
            subs = _by_topic.get(self.topic, [])
            if self in subs:
                subs.remove(self)
            if not subs:
                _by_topic.pop(self.topic, None)

    def deliver(self, value: Any) -> None:
        """Run the callback with ``value`` on the session's loop, with the session current (from any thread)."""
        session = self._session()
        if session is None or not self.active or session.destroyed:
            return
        session.call_soon(functools.partial(self._run, session, value))

    def _run(self, session: Session, value: Any) -> None:
        if not self.active or session.destroyed:
            return
        self.received += 1
        session.scheduler.invoke(functools.partial(self.callback, value),
                                 f"subscriber {callback_name(self.callback)} of topic {self.topic!r}")

    def __repr__(self) -> str:
        state = "active" if self.active else "cancelled"
        return f"<Subscription {self.topic!r} {callback_name(self.callback)} session={self.session_id[:8]}... {state}>"


def subscribe(session: Session, topic: str, callback: Callable[[Any], Any]) -> Subscription:
    """Subscribe ``callback(value)`` to ``topic`` for ``session``; see the module docstring."""
    _check_topic(topic)
    if not callable(callback):
        raise TypeError(f"subscribe({topic!r}): the callback must be callable as callback(value); got {callback!r}")
    session.scheduler.check_alive()
    sub = Subscription(topic, callback, session)
    with _lock:
        _by_topic.setdefault(topic, []).append(sub)
    session.scheduler.own(sub)
    coordinator().listen()
    return sub


def publish(topic: str, value: Any) -> None:
    """Send ``value`` to every subscriber of ``topic`` (in every process with a shared store)."""
    coordinator().publish(_check_topic(topic), value)


def deliver(topic: str, value: Any) -> int:
    """Deliver a message to this process's subscribers of ``topic``; returns how many there are."""
    with _lock:
        subs = list(_by_topic.get(topic, ()))
    for sub in subs:
        try:
            sub.deliver(value)
        except Exception:   # e.g. its loop closed: that subscriber misses it, the others still get it
            log.exception("delivering a message on topic %r to %r failed", topic, sub)
    return len(subs)


def subscriber_count(topic: str | None = None) -> int:
    """How many active subscriptions this process has (to ``topic``, or in all)."""
    with _lock:
        if topic is not None:
            return len(_by_topic.get(topic, ()))
        return sum(len(subs) for subs in _by_topic.values())
