"""SessionRecorder: keeps one session's store record in step with the session.

Invariants:
- every change to a browser-settable value, to the structure holding them,
  or to ``ks.state.saved`` schedules one write, at most every ``debounce_s``;
- a record larger than ``max_bytes`` is not written (logged once per session);
- the record is deleted when the session is destroyed, but not when the
  session is *detached* (its process shuts down): then it is written one last
  time and kept until the store's time to live passes;
- everything runs on the session's loop; the store is called through the
  :class:`~kernelstate.store.worker.StoreWorker`.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bokeh.document.events import DocumentChangedEvent, ModelChangedEvent, RootAddedEvent, RootRemovedEvent

from .base import StoreUnavailableError
from .records import RecordSigner, SessionRecord, record_key
from .tree import RecordedValues
from .worker import StoreWorker

if TYPE_CHECKING:
    from ..request import RequestInfo
    from ..session import Session

__all__ = ["SessionRecorder"]

log = logging.getLogger(__name__)


class SessionRecorder:
    """Writes ``session``'s record (debounced) and deletes it when the session ends."""

    def __init__(self, session: Session, request: RequestInfo, route: str, version: str, worker: StoreWorker,
                 signer: RecordSigner, owner: str, ttl_s: float, debounce_s: float = 0.2, max_bytes: int = 1024 * 1024) -> None:
        self.session = session
        self.key = record_key(session.id)
        self.route, self.version = route, version
        self.worker, self.signer, self.owner = worker, signer, owner
        self.ttl_s, self.debounce_s, self.max_bytes = ttl_s, debounce_s, max_bytes
        self.detached = False
        self.values = RecordedValues(session)
        self.writes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._warned = False
        # The page's path and query only: cookies, headers and the user come from the reconnecting request.
        self._path = request.path
        self._args = {k: [v.decode("latin-1") for v in vs] for k, vs in request.args.items()}

    def start(self) -> None:
        """Watch the session; its first record is written shortly."""
        if self.session.document is not None:
            self.session.document.on_change(self._document_changed)
        self.session.saved.listen(self.mark)
        self.session.on_destroy(self._destroyed)
        self.mark()

    def _document_changed(self, event: DocumentChangedEvent) -> None:
        if isinstance(event, ModelChangedEvent):
            model = event.model
            if event.attr in self.session.browser_props.get(model, ()):
                self.values.value_changed(model, event.attr)
                self.mark()
            elif event.attr in model.properties_with_refs():
                self.values.structure_changed()
                self.mark()
        elif isinstance(event, (RootAddedEvent, RootRemovedEvent)):
            self.values.structure_changed()
            self.mark()

    def mark(self) -> None:
        """Something recoverable changed: write the record soon."""
        if self._timer is None and not self.detached and not self.session.destroyed:
            loop = self.session.event_loop()
            if loop is not None:
                self._timer = loop.call_later(self.debounce_s, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        if not self.worker.available:
            return  # stays dirty: rewritten when the store is back (StoreWorker.on_back), nothing queues up meanwhile
        data = self.encode()
        if data is not None:
            self.worker.spawn(self._put(data))

    def encode(self) -> bytes | None:
        """The signed record as it is now (None if the session has nothing or it is too big)."""
        if self.session.document is None:
            return None
        values, skipped = self.values.collect()
        record = SessionRecord(self.session.id, self.route, self.version, self._path, self._args, values,
                               self.session.saved.to_json(), self.owner)
        data = self.signer.encode(record)
        if (skipped or len(data) > self.max_bytes) and not self._warned:
            self._warned = True
            log.warning("session %s: %s; the session can still be recovered, with what fits (session=%s)",
                        self.route, f"values over 64 KiB are not recorded ({', '.join(skipped[:5])})" if skipped
                        else f"its record is {len(data)} bytes, over the {self.max_bytes}-byte bound: not recorded",
                        self.session.id)
        return None if len(data) > self.max_bytes else data

    async def _put(self, data: bytes) -> None:
        try:
            await self.worker.call(self.worker.store.put, self.key, data, self.ttl_s)
            self.writes += 1
        except StoreUnavailableError:
            pass  # rewritten when the store is back (StoreWorker.on_back)

    def rewrite(self) -> None:
        """Write the record again soon (the store lost it, or was down when it changed)."""
        self.mark()

    def detach(self) -> None:
        """The process lets go of the session without ending it: write the record now and keep it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        data = self.encode()
        self.detached = True
        if data is None or not self.worker.available:
            return  # with the store down, shutdown does not wait on it once per session
        try:
            self.worker.call_blocking(self.worker.store.put, self.key, data, self.ttl_s)
        except StoreUnavailableError:
            pass  # logged once by the worker

    def _destroyed(self, session: Session) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session.saved.listen(None)
        if not self.detached:
            self.worker.spawn(self._delete())

    async def _delete(self) -> None:
        try:
            current = await self.worker.call(self.worker.store.get, self.key)
            if current is not None and not self._written_by_another(current):
                await self.worker.call(self.worker.store.delete, self.key)
        except StoreUnavailableError:
            pass  # the record expires with its time to live

    def _written_by_another(self, data: bytes) -> bool:
        """Whether the stored record was last written by another process (which now holds the session)."""
        try:
            return self.signer.decode(data, self.session.id).owner != self.owner
        except Exception:
            return False

    def __repr__(self) -> str:
        return f"<SessionRecorder {self.session.id[:8]}... writes={self.writes}>"

