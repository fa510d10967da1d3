"""Document hosts: where a session's Document lives.

The session manager talks to every session through the :class:`DocumentHost`
protocol and never knows whether the Document is in this process
(:class:`InProcessHost`) or in a kernel (``kernelstate.jupyter.relay``):
frames in, frames out, a page description, and destroy.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from .context import activate
from .endpoint import DEFAULT_MAX_MESSAGE_BYTES, CloseCode, Connection, DocumentEndpoint, Fragment
from .errors import AppLoadError
from .limits import MessageLimits
from .loading import PageSpec
from .session import RequestInfo, Session, hooks, registry

if TYPE_CHECKING:
    from .loading import AppSpec
    from .pageplan import PagePlan

log = logging.getLogger(__name__)


class DocumentHost(Protocol):
    """One session's Document, wherever it lives."""

    session_id: str
    page: PageSpec

    def populate(self) -> None:
        """Build the Document's models if they are not yet (before the first attach); raises if the app fails."""

    def attach(self, conn: Connection) -> None:
        """Start serving ``conn`` (sends ACK)."""

    def receive(self, conn: Connection, fragment: Fragment) -> float:
        """One frame from the browser, handled at once; seconds to wait before ``conn``'s next frame."""

    def detach(self, conn: Connection) -> None:
        """``conn`` went away (the session lives on until it expires)."""

    def destroy(self, code: int = CloseCode.SESSION_EXPIRED, reason: str = "") -> None:
        """Tear the session down; open connections are closed with ``code``."""

    @property
    def destroyed(self) -> bool: ...

    @property
    def request_reads(self) -> frozenset[tuple[str, str | None]]: ...

    @property
    def session_key_func(self) -> Any:
        """A reuse key function the app set for its own session (None: the host's default applies)."""

    @property
    def owner(self) -> str | None:
        """The signed-in user the session was created for (None where there is no login)."""


class InProcessHost:
    """A Session whose Document lives in this process, served by a DocumentEndpoint.

    Created ``lazy``, the app has run but its Bokeh models are built only when
    a browser connects (:meth:`populate`, see :mod:`kernelstate.pageplan`).
    """

    def __init__(self, session: Session, page: PageSpec, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 limits: MessageLimits | None = None, owner: str | None = None,
                 plan: PagePlan | None = None) -> None:
        self.session = session
        self._owner = owner
        self.session_id = session.id
        self.page = page
        self._endpoint_args = (max_message_bytes, limits)
        self._endpoint: DocumentEndpoint | None = None   # made with the models (populate), or on first use
        self._plan = plan

    @classmethod
    async def create(cls, app: AppSpec, request: RequestInfo, session_id: str,
                     loop: asyncio.AbstractEventLoop | None = None,
                     max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                     limits: MessageLimits | None = None, lazy: bool = False) -> InProcessHost:
        """Create a session for ``request``: created hooks, then the app's code (and its models unless ``lazy``)."""
        session = Session(request, session_id=session_id, loop=loop or asyncio.get_running_loop())
        registry.add(session, app.route)
        hooks.run_created(session)
        try:
            plan = await app.plan(session)
            if not lazy:
                with activate(session):
                    plan.populate()
        except BaseException:
            session.destroy()
            raise
        return cls(session, plan.spec, max_message_bytes, limits, owner=request.user,
                   plan=None if plan.populated else plan)

    @property
    def built(self) -> bool:
        """Whether the page's Bokeh models are built (a lazy host builds them on the first connect)."""
        return self._plan is None

    @property
    def endpoint(self) -> DocumentEndpoint:
        """What serves the session's Document to its connections (made on first use)."""
        if self._endpoint is None:
            self._endpoint = DocumentEndpoint(self.session, *self._endpoint_args)
        return self._endpoint

    def populate(self) -> None:
        """Build the page's Bokeh models now if they are not yet (a lazy host does it on the first connect).

        Raises AppLoadError (its ``cause`` what a component raised) when they cannot be built.
        """
        plan, self._plan = self._plan, None
        if plan is None:
            return
        with activate(self.session):
            try:
                if not self.session.destroyed:
                    _ = self.endpoint   # made first: it sees the roots arrive, as it sees every later change
                plan.populate()
            except AppLoadError:
                raise
            except Exception as exc:
                raise AppLoadError(f"app {plan.default_title!r} raised {type(exc).__name__} while building its "
                                   f"page: {exc}", path=plan.default_title, cause=exc) from exc

    def attach(self, conn: Connection) -> None:
        self.populate()
        self.endpoint.attach(conn)
        self.session.mark_reconnected()

    def receive(self, conn: Connection, fragment: Fragment) -> float:
        endpoint = self._endpoint
        return endpoint.receive(conn, fragment) if endpoint is not None else 0.0

    def detach(self, conn: Connection) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        endpoint.detach(conn)
        if not endpoint.connections:
            self.session.mark_disconnected()

    def destroy(self, code: int = CloseCode.SESSION_EXPIRED, reason: str = "") -> None:
        if self._endpoint is not None:
            self._endpoint.close_all(code, reason or "session ended: reload the page to start a new one")
        self.session.destroy()

    @property
    def destroyed(self) -> bool:
        return self.session.destroyed

    @property
    def request_reads(self) -> frozenset[tuple[str, str | None]]:
        return self.session.request_reads

    @property
    def session_key_func(self) -> Any:
        """A ``session_key_func`` the app set for its own session, if any."""
        return self.session.config_overrides.get("session_key_func")

    @property
    def owner(self) -> str | None:
        return self._owner
