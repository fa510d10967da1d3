"""Session: one browser tab's (or one kernel's) Document and everything it owns.

A session owns its Bokeh ``Document``, the request that created it, its
per-session config overrides, its template, its :class:`Scheduler` (periodic
callbacks, tasks, the onload queue) and its destroyed hooks. Its lifecycle is::

    created -> loaded -> (disconnected -> reconnected)* -> destroyed

``Session.destroy()`` is the single, idempotent teardown. Nothing about a
session is stored anywhere else, apart from the process-wide, documented
:data:`registry` of live sessions used for ``ks.state.session_info``.

Thread-safety: a session's Document is mutated on its event loop only;
``Session.call_soon`` moves work there from other threads.
"""
from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import os
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bokeh.document import Document

from .context import activate, served_session_or_none
from .failures import RateLimitedLog
from .loops import running_loop
from .request import Read, RecordedRequest, RequestInfo
from .saved import SavedState
from .scheduling import Scheduler, callback_name

if TYPE_CHECKING:
    from bokeh.model import Model

    from .auth.session_login import SessionLogin
    from .location import Location

__all__ = ["RequestInfo", "Session", "KernelSession", "SessionRecord", "SessionRegistry", "registry", "hooks"]

log = logging.getLogger(__name__)
app_log = logging.getLogger("kernelstate.application")


class Lifecycle(enum.Enum):
    CREATED = "created"
    LOADED = "loaded"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    DESTROYED = "destroyed"


def new_session_id() -> str:
    """A 256-bit random id (signing is the server's business, see server/tokens.py)."""
    return secrets.token_urlsafe(32)


class SessionHooks:
    """Process-wide created/destroyed hooks (``ks.state.on_session_*`` outside a session)."""

    def __init__(self) -> None:
        self.created: list[Callable[[Session], Any]] = []
        self.destroyed: list[Callable[[Session], Any]] = []

    def add_created(self, cb: Callable[[Session], Any]) -> None:
        if cb not in self.created:
            self.created.append(cb)

    def add_destroyed(self, cb: Callable[[Session], Any]) -> None:
        if cb not in self.destroyed:
            self.destroyed.append(cb)

    def run_created(self, session: Session) -> None:
        for cb in list(self.created):
            session.scheduler.invoke(functools.partial(_as_hook, session, cb),
                                     f"on_session_created hook {callback_name(cb)}")


hooks = SessionHooks()


@dataclass
class SessionRecord:
    """One row of ``ks.state.session_info``; times are UNIX seconds."""

    id: str
    path: str
    created: float
    rendered: float | None = None
    ended: float | None = None


class SessionRegistry:
    """Process-wide bookkeeping of sessions for ``ks.state.session_info``.

    Live sessions are held weakly; ended records are kept for the most recent
    ``history`` sessions only, so the registry is bounded.
    """

    def __init__(self, history: int = 1000) -> None:
        self._live: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._history = history
        self._lock = threading.Lock()
        self.total = 0

    def add(self, session: Session, route: str) -> None:
        """Register a live session of the app at ``route`` (records hold no request data)."""
        with self._lock:
            self._live[session.id] = session
            self._records[session.id] = SessionRecord(session.id, route, session.created_at)
            self.total += 1
            self._trim()

    def rendered(self, session: Session) -> None:
        with self._lock:
            record = self._records.get(session.id)
            if record is not None:
                record.rendered = time.time()

    def ended(self, session: Session) -> None:
        with self._lock:
            self._live.pop(session.id, None)
            record = self._records.get(session.id)
            if record is not None:
                record.ended = time.time()
            self._trim()

    def _trim(self) -> None:
        while len(self._records) > self._history:
            oldest = next(iter(self._records))
            if oldest in self._live:
                break
            del self._records[oldest]

    def live(self, kind: str | None = None) -> int:
        """How many sessions are alive, optionally of one ``kind`` ("served", "cell", "kernel")."""
        with self._lock:
            sessions = list(self._live.values())
        return sum(1 for s in sessions if kind is None or s.kind == kind)

    def info(self) -> dict[str, Any]:
        with self._lock:
            sessions = {sid: vars(rec).copy() for sid, rec in self._records.items()}
        return {"total": self.total, "live": self.live(), "sessions": sessions}


registry = SessionRegistry()
_counter = itertools.count(1)


class Session:
    """One user's session. Create through a server or ``Session.for_test``."""

    kind = "served"

    def __init__(self, request: RequestInfo | None = None, session_id: str | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, document: Document | None = None,
                 clock: Any = None) -> None:
        self.id = session_id or new_session_id()
        self.serial = next(_counter)
        self.request = RecordedRequest(request)
        self._document: Document | None = document   # made on first use: see the document property
        self._document_lock = threading.Lock()
        self.config_overrides: dict[str, Any] = {}
        self.lifecycle = Lifecycle.CREATED
        self.created_at = time.time()
        self.scheduler = Scheduler(self, clock)
        self.destroyed_hooks: list[Callable[[Session], Any]] = []
        # browser values components refused, per "<Component>.<parameter>" (components/validation.py)
        self.refused_values: dict[str, int] = {}
        # model -> the properties its component lets the browser set (what a session store records)
        self.browser_props: weakref.WeakKeyDictionary[Model, tuple[str, ...]] = weakref.WeakKeyDictionary()
        self.saved = SavedState()  # ks.state.saved: JSON kept with the session's store record
        self.restored_hooks: list[Callable[[], Any]] = []  # ks.state.on_session_restored
        self.title: str | None = None
        self.page_title: str | None = None   # the title its page was planned with (kernelstate.pageplan)
        self.servables: list[tuple[Any, str]] = []
        self._template: Any = None
        self._location: Location | None = None
        self.login: SessionLogin | None = None   # the login it lives under, kept fresh (auth/session_login.py)
        self._loop = loop
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._destroyed = False
        self._destroy_listeners: list[Callable[[Session], None]] = []

    @property
    def request_reads(self) -> frozenset[Read]:
        """What app code has read of :attr:`request` (the one holder of the request data)."""
        return self.request.reads

    # -- lifecycle ------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.lifecycle not in (Lifecycle.CREATED, Lifecycle.DESTROYED)

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    @property
    def document(self) -> Document | None:
        """This session's Bokeh Document: made on first use, None once the session is destroyed.

        The standalone server answers a page before any model exists and builds
        them when the browser connects (:mod:`kernelstate.pageplan`), so a page
        nobody connects to makes no Document either.
        """
        document = self._document
        if document is None and not self._destroyed:
            with self._document_lock:
                if self._document is None and not self._destroyed:
                    self._document = Document()
                document = self._document
        return document

    def mark_loaded(self) -> None:
        """The browser rendered the Document: run the onload queue (once)."""
        if self.lifecycle is not Lifecycle.CREATED:
            return
        self.lifecycle = Lifecycle.LOADED
        registry.rendered(self)
        self.scheduler.run_onload()

    def mark_disconnected(self) -> None:
        if not self._destroyed and self.lifecycle is not Lifecycle.CREATED:
            self.lifecycle = Lifecycle.DISCONNECTED

    def mark_reconnected(self) -> None:
        if self.lifecycle is Lifecycle.DISCONNECTED:
            self.lifecycle = Lifecycle.RECONNECTED

    def on_destroy(self, listener: Callable[[Session], None]) -> None:
        """Internal listeners (servers, hosts) told after teardown."""
        self._destroy_listeners.append(listener)

    def destroy(self) -> None:
        """Stop everything the session scheduled, run destroyed hooks once, drop the Document.

        Idempotent: a second call does nothing. A hook that raises is logged
        and the others still run.
        """
        if self._destroyed:
            return
        self._destroyed = True
        self.lifecycle = Lifecycle.DESTROYED
        self.scheduler.stop()
        for cb in [*self.destroyed_hooks, *hooks.destroyed]:
            try:
                with activate(self):
                    _as_hook(self, cb)
            except Exception:
                RateLimitedLog().failed(f"on_session_destroyed hook {callback_name(cb)}", self.id)
        self.destroyed_hooks.clear()
        self.restored_hooks.clear()
        document, self._document = self._document, None
        if document is not None:
            _release_document(document)
        self._template = None
        self.servables.clear()
        registry.ended(self)
        for listener in self._destroy_listeners:
            try:
                listener(self)
            except Exception:
                log.exception("destroy listener failed (session=%s)", self.id)
        self._destroy_listeners.clear()

    # -- loop and busy --------------------------------------------------------
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the session's loop (now, if already there)."""
        self.scheduler.on_loop(fn)

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def busy_enter(self) -> None:
        with self._busy_lock:
            self._busy += 1

    def busy_exit(self) -> None:
        with self._busy_lock:
            self._busy = max(0, self._busy - 1)

    # -- template -------------------------------------------------------------
    @property
    def template(self) -> Any:
        """This session's template instance (set by :func:`kernelstate.template.session_template`), or None."""
        return self._template

    @template.setter
    def template(self, template: Any) -> None:
        self._template = template

    def has_template(self) -> bool:
        return self._template is not None

    # -- location -------------------------------------------------------------
    @property
    def location(self) -> Location:
        """The page's URL query synced with parameters (:mod:`kernelstate.location`), made on first use."""
        if self._location is None:
            from .location import Location

            self._location = Location(self)
        return self._location

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id[:8]}... {self.lifecycle.value}>"


class KernelSession(Session):
    """The session that is current in a kernel or script outside any served session.

    It is always loaded (``onload`` runs at once) and never destroyed; its
    periodic callbacks run on whichever asyncio loop is running in the
    thread that registers them (the kernel's loop in a notebook).
    """

    kind = "kernel"

    def __init__(self) -> None:
        super().__init__(RequestInfo(), session_id=f"kernel-{os.getpid()}")
        self.lifecycle = Lifecycle.LOADED

    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        running = running_loop()
        if running is not None and (self._loop is None or self._loop.is_closed() or not self._loop.is_running()):
            self._loop = running
        if self._loop is not None and self._loop.is_closed():
            self._loop = None
        return self._loop

    def destroy(self) -> None:
        """A kernel session lives as long as the process: stop its callbacks only."""
        self.scheduler.stop()
        self.scheduler = Scheduler(self)


_kernel_session: list[KernelSession] = []


def kernel_session() -> Session:
    """Return the process-wide session used outside any served session (created on first use).

    In a notebook kernel (or a plain script) this is the session whose
    periodic callbacks run on the kernel's event loop.
    """
    if not _kernel_session:
        _kernel_session.append(KernelSession())
    return _kernel_session[0]


def current_session() -> Session:
    """Return the activated session, or the process-wide kernel session."""
    return served_session_or_none() or kernel_session()


def _as_hook(session: Session, cb: Callable[[Session], Any]) -> Any:
    """Run a created/destroyed hook, during which ``session.request.audit()`` is allowed."""
    session.request.hook_running(True)
    try:
        return cb(session)
    finally:
        session.request.hook_running(False)


def _release_document(document: Document) -> None:
    """Break the Document's references so it and its models can be collected."""
    try:
        document.clear()
    except Exception:
        log.exception("could not clear a destroyed session's document")
