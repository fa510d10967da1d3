"""SessionRecovery: a server's session store, the recorders of its sessions, and rebuilding sessions from records.

A server with ``--session-store`` owns one SessionRecovery. It

- tracks every session it creates (a :class:`SessionRecorder` writes its record);
- rebuilds a session when a tab reconnects with a session id this process does
  not have and the store holds a valid record for it: the app runs for the
  saved path and query (cookies, headers and the user are the reconnecting
  request's), the saved values are set in document order as if the browser
  had sent them (watchers run; clicks and uploads are not replayed),
  ``ks.state.saved`` is restored, then ``ks.state.on_session_restored``
  callbacks run. When the app's source changed since the record was written,
  what still matches is restored and the rest is logged as dropped;
- detaches every session at shutdown (records kept, tabs told to reconnect);
- extends the records of live sessions at every unused-session sweep, and
  rewrites those the store lost (a restarted Redis).

All methods run on the server's event loop, except :meth:`detach_all`, which
blocks the (stopping) loop's thread until the last records are written.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..scheduling import callback_name
from ..session import RequestInfo, Session
from .base import SessionStore, StoreUnavailableError, TamperedRecordError
from .recorder import SessionRecorder
from .records import RecordSigner, SessionRecord, record_key
from .tree import apply_values
from .worker import StoreWorker

if TYPE_CHECKING:
    from ..loading import AppSpec
    from ..web.manager import SessionEntry, SessionManager

__all__ = ["SessionRecovery", "app_version"]

log = logging.getLogger(__name__)


def app_version(app: AppSpec) -> str:
    """A hash of the app's source (its file, or the code of the object it serves)."""
    digest = hashlib.sha256(app.route.encode("utf-8"))
    path = app.source_path
    if path is not None:
        try:
            digest.update(path.read_bytes())
        except OSError:
            pass
    else:
        obj = getattr(app, "obj", None)
        try:
            digest.update(inspect.getsource(obj if callable(obj) else type(obj)).encode("utf-8"))
        except (OSError, TypeError):
            digest.update(type(obj).__qualname__.encode("utf-8"))
    return digest.hexdigest()[:16]


class SessionRecovery:
    """See the module docstring."""

    def __init__(self, store: SessionStore, secret: bytes, ttl_s: float) -> None:
        self.worker = StoreWorker(store)
        self.worker.on_back = self._store_back
        self.signer = RecordSigner(secret)
        self.ttl_s = ttl_s
        self.owner = secrets.token_hex(8)
        self.restored_total = 0
        self._live: dict[str, SessionRecorder] = {}
        self._recovering: dict[str, asyncio.Future[SessionEntry | None]] = {}

    @property
    def description(self) -> str:
        return self.worker.store.description

    # -- recording ---------------------------------------------------------------
    def track(self, session: Session, app: AppSpec, request: RequestInfo) -> SessionRecorder:
        """Keep ``session``'s record from now on (called once its app code has run)."""
        recorder = SessionRecorder(session, request, app.route, app_version(app), self.worker, self.signer,
                                   self.owner, self.ttl_s)
        self._live[session.id] = recorder
        session.on_destroy(self._forget)
        recorder.start()
        return recorder

    def _forget(self, session: Session) -> None:
        self._live.pop(session.id, None)

    def _store_back(self) -> None:
        for recorder in list(self._live.values()):
            recorder.rewrite()

    async def sweep(self) -> None:
        """Extend the records of live sessions; rewrite the ones the store no longer has."""
        recorders = {r.key: r for r in self._live.values() if not r.detached}
        if not recorders:
            return
        try:
            missing = await self.worker.call(self.worker.store.touch, list(recorders), self.ttl_s)
        except StoreUnavailableError:
            return
        for key in missing:
            recorders[key].rewrite()

    def detach_all(self, manager: SessionManager, code: int, reason: str) -> None:
        """Shutdown: write every session's record one last time and keep it; close its tabs with ``code``."""
        for recorder in list(self._live.values()):
            recorder.detach()
        manager.destroy_all(code, reason)

    # -- recovering --------------------------------------------------------------
    async def load(self, session_id: str) -> SessionRecord | None:
        """The valid record of ``session_id``, or None (no record, store down, or refused: logged)."""
        try:
            data = await self.worker.call(self.worker.store.get, record_key(session_id))
        except StoreUnavailableError:
            return None
        if data is None:
            return None
        try:
            return self.signer.decode(data, session_id)
        except TamperedRecordError as exc:
            log.warning("refused to restore a session: %s; the tab is told to reload (session=%s)", exc, session_id)
            return None

    async def recover(self, manager: SessionManager, app: AppSpec, session_id: str,
                      reconnecting: RequestInfo) -> SessionEntry | None:
        """Rebuild ``session_id`` from its record for a reconnecting tab; None when there is nothing to rebuild.

        Two connections reconnecting with the same id at once get the one rebuilt session.
        """
        inflight = self._recovering.get(session_id)
        if inflight is not None:
            return await asyncio.shield(inflight)
        future: asyncio.Future[SessionEntry | None] = asyncio.get_running_loop().create_future()
        self._recovering[session_id] = future
        try:
            entry = await self._recover(manager, app, session_id, reconnecting)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: the caller gets it raised
            raise
        else:
            future.set_result(entry)
            return entry
        finally:
            del self._recovering[session_id]

    async def _recover(self, manager: SessionManager, app: AppSpec, session_id: str,
                       reconnecting: RequestInfo) -> SessionEntry | None:
        t0 = time.monotonic()
        record = await self.load(session_id)
        if record is None or record.route != app.route:
            return None
        existing = manager.get(session_id)
        if existing is not None:  # rebuilt meanwhile (or never gone)
            return existing
        request = _saved_request(record, reconnecting)
        entry = await manager.create(app, request, session_id)
        session = getattr(entry.host, "session", None)
        if not isinstance(session, Session):
            return entry
        entry.host.populate()   # the saved values are set on the models, in document order
        restored, dropped = apply_values(session, record.values)
        session.saved.restore(record.saved)
        version = app_version(app)
        if record.version != version:
            log.warning("session %s restored from app version %s into %s: %d value(s) restored, %d dropped%s "
                        "(session=%s)", app.route, record.version, version, restored, len(dropped),
                        f": {', '.join(dropped[:10])}" if dropped else "", session_id)
        elif dropped:
            log.info("session %s restored: %d value(s) not restored as saved: %s (session=%s)", app.route,
                     len(dropped), ", ".join(dropped[:10]), session_id)
        for cb in list(session.restored_hooks):
            session.scheduler.invoke(functools.partial(cb), f"on_session_restored callback {callback_name(cb)}")
        self.restored_total += 1
        log.info("restored session %s in %.0f ms (%d value(s)) (session=%s)", app.route,
                 (time.monotonic() - t0) * 1000, restored, session_id)
        return entry

    def close(self) -> None:
        self.worker.close()


def _saved_request(record: SessionRecord, reconnecting: RequestInfo) -> RequestInfo:
    """The saved path and query, with everything else (cookies, headers, user, address) from the reconnecting request."""
    args = {k: [v.encode("latin-1") for v in vs] for k, vs in record.args.items()}
    base = reconnecting.url.split("/", 3)
    origin = "/".join(base[:3]) if len(base) >= 3 else ""
    query = urlencode([(k, v) for k, vs in record.args.items() for v in vs])
    url = origin + record.path + (f"?{query}" if query else "")
    return RequestInfo(args=args, headers=reconnecting.headers, cookies=reconnecting.cookies, path=record.path,
                       url=url, user=reconnecting.user, remote_ip=reconnecting.remote_ip)

