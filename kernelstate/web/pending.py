"""Pending sessions: what a session needs to be created when its WebSocket connects.

A pending session is an app and the request values its app code may read
(:class:`~kernelstate.session.RequestInfo`), kept under a signed session id
until the page's token expires. There are two kinds:

- *fresh*: a reuse page just answered from the cache. It holds a session slot
  (see :mod:`kernelstate.web.limits`) for its first-connect window;
- *dormant*: a fresh one whose window passed, or a session that was destroyed
  because its page never connected in time. It holds no slot, only memory, so
  a slow page load can still get its session.

Memory is bounded three ways: a request larger than ``max_entry_bytes`` is not
kept pending at all (its page is rendered as a full session, which the
session limits count); the store holds at most ``max_count`` entries and
``max_bytes`` of request data; to make room, the oldest dormant entries are
dropped first, and a fresh entry that still does not fit is refused.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..loading import AppSpec
from ..session import RequestInfo
from .limits import SessionLimitError

ITEM_OVERHEAD = 64     # bytes per kept string/dict item beyond its characters (CPython, roughly)
ENTRY_OVERHEAD = 1024  # the entry, its session id and its dicts
MAX_ENTRY_BYTES = 16 * 1024
MAX_BYTES = 16 * 1024 * 1024
MAX_COUNT = 10_000


def request_bytes(info: RequestInfo) -> int:
    """About how much memory keeping ``info`` costs."""
    size = ENTRY_OVERHEAD + sum(len(s or "") for s in (info.path, info.url, info.user, info.remote_ip,
                                                   info.access_token)) + len(repr(info.user_info))
    for mapping in (info.headers, info.cookies):
        size += sum(len(k) + len(v) + ITEM_OVERHEAD for k, v in mapping.items())
    for name, values in info.args.items():
        size += len(name) + ITEM_OVERHEAD + sum(len(v) + ITEM_OVERHEAD for v in values)
    return size


@dataclass
class PendingSession:
    app: AppSpec
    request: RequestInfo
    client: str
    expires: float          # time.monotonic() when the page's token expires
    size: int
    slot_until: float = 0.0  # a fresh entry holds a session slot until then; 0: dormant


class PendingStore:
    """Fresh and dormant pending sessions by id, bounded in count and bytes."""

    def __init__(self, max_count: int = MAX_COUNT, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.bytes = 0
        self._fresh: OrderedDict[str, PendingSession] = OrderedDict()    # in slot_until order
        self._dormant: OrderedDict[str, PendingSession] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._fresh) + len(self._dormant)

    @property
    def fresh_count(self) -> int:
        return len(self._fresh)

    def add(self, session_id: str, pending: PendingSession) -> bool:
        """Keep ``pending``; False if it is too large to keep. A fresh entry that does not fit
        raises SessionLimitError; a dormant one that does not fit is dropped (False)."""
        if pending.size > self.max_entry_bytes:
            return False
        while self._dormant and not self._fits(pending.size):
            self._forget(self._dormant.popitem(last=False)[1])
        if not self._fits(pending.size):
            if pending.slot_until:
                raise SessionLimitError(f"the server holds {len(self)} pages waiting for their first "
                                        "connection, as many as it may")
            return False
        (self._fresh if pending.slot_until else self._dormant)[session_id] = pending
        self.bytes += pending.size
        return True

    def pop(self, session_id: str) -> PendingSession | None:
        pending = self._fresh.pop(session_id, None) or self._dormant.pop(session_id, None)
        if pending is not None:
            self._forget(pending)
        return pending

    def end_windows(self, now: float) -> list[PendingSession]:
        """Fresh entries whose first-connect window has passed become dormant (or go, if
        their token expired too); returns them, so their slots can be released."""
        ended: list[PendingSession] = []
        while self._fresh:
            session_id, pending = next(iter(self._fresh.items()))
            if pending.slot_until > now:
                break
            del self._fresh[session_id]
            ended.append(pending)
            pending.slot_until = 0.0
            if pending.expires > now:
                self._dormant[session_id] = pending
            else:
                self._forget(pending)
        return ended

    def drop_expired(self, now: float) -> None:
        for session_id in [sid for sid, p in self._dormant.items() if p.expires <= now]:
            self._forget(self._dormant.pop(session_id))

    def fresh(self) -> list[PendingSession]:
        return list(self._fresh.values())

    def clear(self) -> None:
        self._fresh.clear()
        self._dormant.clear()
        self.bytes = 0

    def _fits(self, size: int) -> bool:
        return len(self) < self.max_count and self.bytes + size <= self.max_bytes

    def _forget(self, pending: PendingSession) -> None:
        self.bytes -= pending.size
