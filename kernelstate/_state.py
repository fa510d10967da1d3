"""``ks.state``: the session-aware runtime API, as a facade with no storage.

(The module is named ``_state`` so it never shadows the ``ks.state`` object.)

Every property reads the current session (see :mod:`kernelstate.context`);
in a kernel outside any served session that is the process-wide
``KernelSession``. Process-wide things are named as such: ``cache``
(:mod:`kernelstate.cache`), named tasks (:mod:`kernelstate.tasks`) and
``session_info`` (:data:`kernelstate.session.registry`).

Request values (``session_args``, ``headers``, ``cookies``, ``request``,
``user``) are read through the session's one :class:`~kernelstate.request.RecordedRequest`,
which records every read, so the reuse cache can tell when a page depends on
the request.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from bokeh.document import Document

from .cache import Cache, cache
from .request import RecordedRequest
from .saved import SavedState
from .scheduling import PeriodicCallback
from .session import Session, current_session, hooks, registry
from .tasks import ScheduledTask, tasks

if TYPE_CHECKING:
    from .cluster.topics import Subscription
    from .location import Location

state_log = logging.getLogger("kernelstate.state")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


class State:
    """The ``ks.state`` object; see the module docstring."""

    # -- the current session --------------------------------------------------
    @property
    def session(self) -> Session:
        return current_session()

    @property
    def curdoc(self) -> Document | None:
        return current_session().document

    @property
    def session_id(self) -> str:
        return current_session().id

    @property
    def session_args(self) -> Mapping[str, list[bytes]]:
        return current_session().request.args

    @property
    def headers(self) -> Mapping[str, str]:
        return current_session().request.headers

    @property
    def cookies(self) -> Mapping[str, str]:
        return current_session().request.cookies

    @property
    def user(self) -> str | None:
        """The signed-in user's name (None without a login)."""
        return current_session().request.user

    @property
    def user_info(self) -> Mapping[str, Any]:
        """The signed-in user's claims (OIDC claims; ``name`` for a password login; Jupyter's identity)."""
        return current_session().request.user_info

    @property
    def access_token(self) -> str | None:
        """The OAuth access token of the signed-in user (None for password and Jupyter logins).

        Kept fresh while the session lives: see :meth:`on_access_token_refreshed`.
        """
        return current_session().request.access_token

    def on_access_token_refreshed(self, callback: Callable[[str | None], Any]) -> None:
        """Run ``callback(access_token)`` in this session whenever its login's access token is refreshed.

        While a session lives, the server refreshes its OAuth access token shortly before it
        expires (and on a reconnect); ``access_token`` and ``user_info`` then return the new
        values. Never called for password logins, in the Jupyter extension or in a kernel.
        """
        from .auth.session_login import SessionLogin

        SessionLogin.of(current_session()).on_refreshed(callback)

    @property
    def request(self) -> RecordedRequest:
        """The current session's request; every read through it is recorded (see :mod:`kernelstate.request`)."""
        return current_session().request

    @property
    def template(self) -> Any:
        from .template import session_template

        return session_template(current_session())

    @property
    def location(self) -> Location:
        """The current session's URL query, synced with parameters: ``location.sync(widget, {"value": "q"})``.

        See :mod:`kernelstate.location`; in a notebook cell or a kernel, ``sync`` does nothing (said once).
        """
        return current_session().location

    @property
    def loaded(self) -> bool:
        return current_session().loaded

    @property
    def busy(self) -> bool:
        return current_session().busy

    @property
    def served(self) -> bool:
        """True for a page served by kernelstate (standalone or the Jupyter extension's apps).

        False in a kernel, and in callbacks of components displayed in notebook cells.
        """
        return current_session().kind == "served"

    # -- process-wide ---------------------------------------------------------
    @property
    def cache(self) -> Cache:
        """Process-wide: shared by every session and the kernel."""
        return cache

    @property
    def session_info(self) -> dict[str, Any]:
        """Process-wide: ``{"total", "live", "sessions": {id: {created, rendered, ended, ...}}}``."""
        return registry.info()

    def log(self, msg: str, level: str = "info") -> None:
        """Log ``msg`` prefixed with the current session id."""
        if level not in _LEVELS:
            raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
        state_log.log(_LEVELS[level], "session %s: %s", current_session().id, msg)

    # -- scheduling -----------------------------------------------------------
    def add_periodic_callback(self, callback: Callable[[], Any], period: float = 500,
                              count: int | None = None, timeout: float | None = None,
                              start: bool = True) -> PeriodicCallback:
        """Run ``callback`` every ``period`` ms; ``timeout`` is also in ms.

        Inside a session it is stopped when the session is destroyed; in a
        kernel it runs on the kernel's loop. Raises ``NoEventLoopError``
        when there is no loop to run on.
        """
        return current_session().scheduler.add_periodic(callback, period, count, timeout, start)

    def execute(self, callback: Callable[..., Any], *args: Any, schedule: Any = "auto", **kwargs: Any) -> Any:
        """Run ``callback(*args, **kwargs)`` for the current session.

        ``"auto"``: now when on the session's loop, else on its next tick;
        ``True``: next tick; ``"thread"``: on the thread pool (returns a
        ``concurrent.futures.Future``), with the session still current; thread work
        still queued when the session is destroyed never starts (its future is
        cancelled). Failures are logged with the session id and handed to
        ``ks.config.exception_handler`` (a thread's failure is also set on its future).

        Offloading: ``schedule`` a ``distributed.Client``, any ``concurrent.futures.Executor``
        or ``"dask"`` (``ks.config.dask_scheduler``) runs the function there and returns an
        ``asyncio.Future`` of its result on the session's loop (``await`` it). Destroying
        the session cancels work not started and drops results still to come; the function
        can check ``ks.cancellation()`` to stop early (see :mod:`kernelstate.cluster.offload`).
        """
        from .cluster.offload import is_offload_target, offload

        if is_offload_target(schedule):
            return offload(current_session(), callback, args, kwargs, schedule)
        if args or kwargs:
            callback = functools.partial(callback, *args, **kwargs)
        return current_session().scheduler.execute(callback, schedule)

    def onload(self, callback: Callable[[], Any], threaded: bool = False) -> None:
        """Run ``callback`` once the browser has rendered the session (at once if it has)."""
        current_session().scheduler.onload(callback, threaded)

    def schedule_task(self, name: str, callback: Callable[[], Any], at: Any = None,
                      period: Any = None, cron: str | None = None, threaded: bool = False) -> ScheduledTask:
        """Schedule a process-wide named task; a second call with the same name returns the existing task.

        ``period``: seconds, ``"10s"``/``"5m"``/``"1h"``/``"1d"``/``"1w"`` or a timedelta.
        ``at``: a datetime, an iterable of datetimes, or a callable ``at(now)`` (or
        ``at()``) returning the next datetime, asked again after each run (``None``
        ends the task), or returning an iterable of datetimes. Naive datetimes are
        local time; aware ones are converted to it. ``cron``: a cron expression.
        Every argument is checked before the name is taken. A task whose last
        ``at=`` time has run is dropped (its name is free again); a task whose event
        loop has stopped is replaced by the next call. Failures are logged and go to
        the process-level ``ks.config.exception_handler``.
        """
        return tasks.schedule(name, callback, at=at, period=period, cron=cron, threaded=threaded)

    def cancel_task(self, name: str) -> bool:
        """Cancel the named task; returns whether it was scheduled (a finished one-shot task is gone: False)."""
        return tasks.cancel(name)

    def on_session_created(self, callback: Callable[[Session], Any]) -> None:
        """Process-wide: ``callback(session)`` runs for every new session, before its app code.

        A hook that only looks at the request (auditing, logging) reads
        ``session.request.audit()``; other reads through ``session.request`` count
        as the page's dependencies for ``--reuse-sessions`` (``.path`` only as the path).
        """
        hooks.add_created(callback)

    def on_session_destroyed(self, callback: Callable[[Session], Any]) -> None:
        """In a served session: for that session; elsewhere: for every session."""
        session = current_session()
        if session.kind == "kernel":
            hooks.add_destroyed(callback)
        elif callback not in session.destroyed_hooks:
            session.destroyed_hooks.append(callback)

    def as_cached(self, key: Hashable, fn: Callable[..., Any], ttl: float | None = None, shared: bool = False,
                  **kwargs: Any) -> Any:
        """Process-wide memo: compute ``fn(**kwargs)`` once per key (``ttl`` in seconds).

        ``shared=True``: once across every process of a shared session store (a JSON value or
        bytes, signed, size-bounded); see :mod:`kernelstate.cluster.shared_cache`.
        """
        return cache.as_cached(key, fn, ttl=ttl, shared=shared, **kwargs)

    # -- messages -------------------------------------------------------------
    def publish(self, topic: str, value: Any) -> None:
        """Send ``value`` to every subscriber of ``topic``, in every process of a shared session store.

        Across processes the value must be JSON or bytes (signed, size-bounded); on one
        process subscribers receive the object itself. See :mod:`kernelstate.cluster.topics`.
        """
        from .cluster.topics import publish

        publish(topic, value)

    def subscribe(self, topic: str, callback: Callable[[Any], Any]) -> Subscription:
        """Run ``callback(value)`` for every message on ``topic``, in this session, on its loop.

        The subscription ends with the session (outside a served session: with the
        process), or with ``.cancel()`` on the returned :class:`Subscription`.
        """
        from .cluster.topics import subscribe

        return subscribe(current_session(), topic, callback)
    @property
    def saved(self) -> SavedState:
        """This session's JSON dict kept with its store record (see :mod:`kernelstate.saved`)."""
        return current_session().saved

    def on_session_restored(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` when this session is rebuilt from the session store in another process
        (after the saved values and ``saved`` are back); never for a session that was not restored."""
        session = current_session()
        if callback not in session.restored_hooks:
            session.restored_hooks.append(callback)

    def __repr__(self) -> str:
        return f"<kernelstate state; current session {current_session().id}>"


state = State()
