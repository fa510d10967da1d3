"""The Bokeh protocol, served from one Session's Document to its connections.

``DocumentEndpoint`` is transport-agnostic: a :class:`Connection` is anything
that can write a list of frames at once and close with a code. The standalone
server's WebSocket handler is one; the kernel's comm (a relayed browser tab)
is another. Both run this same code.

Invariants:
- every incoming message is dispatched with the session active;
- document changes are coalesced: all events of one loop iteration go out as
  one PATCH-DOC per connection, each message written in one go, and never
  echoed to the connection whose patch caused them;
- a malformed message closes only its own connection (close code 4001); a
  message that fails in user code gets an ERROR reply and the connection stays;
- a message over its connection's :class:`~kernelstate.limits.MessageLimits`
  (values, nesting, new models, references) is refused before Bokeh decodes
  it: close code 4009 and a log line naming the session;
- a connection whose message held the loop for ``t`` > 10 ms is not read
  again for another ``t``: one client gets at most half the loop, whatever
  it sends, and every other session gets the rest.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from bokeh.core.types import ID
from bokeh.document.events import DocumentPatchedEvent
from bokeh.events import DocumentReady
from bokeh.protocol import Protocol as BokehProtocol
from bokeh.protocol.message import Message
from bokeh.protocol.messages.pull_doc_reply import pull_doc_reply

from .assembler import Assembler
from .context import activate
from .docjson import pull_doc_reply_message
from .failures import RateLimitedLog, callback_failed
from .limits import MessageLimitError, MessageLimits, check_patch, count_values
from .session import Session

log = logging.getLogger(__name__)

Fragment = str | bytes
MAX_BUFFERS = 64
DEFAULT_MAX_MESSAGE_BYTES = 20 * 1024 * 1024
YIELD_AFTER_S = 0.01  # a message that held the loop longer makes its connection wait as long
CLIENT_MSGTYPES = frozenset({"PULL-DOC-REQ", "PATCH-DOC", "PUSH-DOC", "SERVER-INFO-REQ", "ACK", "OK", "ERROR"})


class CloseCode:
    """WebSocket close codes kernelstate uses (all in the 4000-4999 application range)."""

    MALFORMED = 4001        # the client sent something that is not a valid Bokeh protocol message
    FORBIDDEN = 4003        # a message type the client may not send
    TOKEN_EXPIRED = 4401    # the page's token expired before it connected
    SIGNED_OUT = 4411       # the login the connection was opened under ended (logout); sign in again
    SESSION_EXPIRED = 4404  # the session was destroyed (idle too long); reload for a new one
    SERVICE_RESTART = 1012  # RFC 6455: the server restarts; with a session store the tab reconnects and carries on
    SERVER_STOPPING = 4503  # the server is shutting down
    KERNEL_DIED = 4510      # the kernel hosting the Document died
    APP_FAILED = 4500       # the app's page could not be built when the browser connected (logged with the session id)
    MESSAGE_TOO_BIG = 1009  # RFC 6455's code, as for one oversized frame: the frames of one message add up past the limit
    MESSAGE_TOO_COMPLEX = 4009  # under the size limit, but over a MessageLimits bound (values, depth, models, references)


class Connection(Protocol):
    """One client of a Document (a browser tab, or the relay for one)."""

    def send_frames(self, frames: Sequence[Fragment]) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


protocol = BokehProtocol()


def message_frames(message: Message[Any]) -> list[Fragment]:
    """All frames of a message, in wire order."""
    frames: list[Fragment] = [message.header_json, message.metadata_json, message.content_json]
    for buffer in message.buffers:
        frames.append(json.dumps(buffer.ref))
        frames.append(buffer.to_bytes())
    return frames


class _ConnectionState:
    def __init__(self, limits: MessageLimits) -> None:
        self.receiver = Assembler(protocol)
        self.limits = limits
        self.text_frames = 0    # header, metadata, content: the frames json.loads will parse
        self.message_values = 0  # upper bound on the JSON values in those, so far
        self.expect_header = True
        self.remaining = 0
        # Patches go only to connections that have pulled the document: a
        # patch naming a model the client does not have yet breaks it.
        self.pulled = False
        self.message_bytes = 0  # received so far for the message being assembled


class DocumentEndpoint:
    """Serves ``session.document`` over the Bokeh protocol to its connections."""

    def __init__(self, session: Session, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 limits: MessageLimits | None = None) -> None:
        if session.document is None:
            raise ValueError(f"session {session.id} has no document (destroyed?)")
        self.session = session
        # The transport limits each frame; this limits a whole message (header,
        # metadata, content and up to MAX_BUFFERS buffers), so one connection
        # cannot make the server hold MAX_BUFFERS x the frame limit.
        self.max_message_bytes = max_message_bytes
        self.limits = limits or MessageLimits()
        self.document = session.document
        self._connections: dict[Connection, _ConnectionState] = {}
        self._pending: list[DocumentPatchedEvent] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self._errors = RateLimitedLog()
        # The PULL-DOC reply's frames after its header, kept while the Document does not change:
        # (changes seen when it was made, frames). A tab that reconnects or pulls again gets them as they are.
        self._changes = 0
        self._pull_reply: tuple[int, list[Fragment]] | None = None
        self.document.on_change(self._document_changed)
        self.document.on_event(DocumentReady, self._document_ready)  # type: ignore[arg-type]  # bokeh types the callback by the base Event

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections)

    # -- connections ------------------------------------------------------------
    def attach(self, conn: Connection, limits: MessageLimits | None = None) -> None:
        """Start serving ``conn``: it gets an ACK and may then PULL the document.

        ``limits`` overrides the endpoint's :class:`MessageLimits` for this
        connection (a relayed connection carries the Jupyter server's).
        """
        self._connections[conn] = _ConnectionState(limits or self.limits)
        conn.send_frames(message_frames(protocol.create("ACK")))

    def detach(self, conn: Connection) -> None:
        self._connections.pop(conn, None)

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self._connections):
            self._connections.pop(conn, None)
            try:
                conn.close(code, reason)
            except Exception:
                log.debug("closing a connection failed (session=%s)", self.session.id, exc_info=True)

    def _document_ready(self, event: DocumentReady) -> None:
        self.session.mark_loaded()

    # -- incoming -------------------------------------------------------------
    def receive(self, conn: Connection, fragment: Fragment) -> float:
        """Feed one frame from ``conn``; dispatch the message once complete.

        Handled at once; returns how long the caller should wait before feeding
        ``conn``'s next frame (0.0, or as long as a heavy message held the loop).
        """
        started = time.perf_counter()
        state = self._connections.get(conn)
        if state is None:
            return 0.0
        state.message_bytes += len(fragment)
        if state.message_bytes > self.max_message_bytes:
            log.warning("closing connection: a message exceeded %d bytes (session=%s)",
                        self.max_message_bytes, self.session.id)
            self.detach(conn)
            conn.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return 0.0
        try:
            if state.text_frames < 3:
                state.text_frames += 1
                state.message_values += count_values(fragment)
                if state.message_values > state.limits.values:
                    raise MessageLimitError("values", state.message_values, state.limits.values)
            if state.expect_header:
                self._check_header(fragment)
            message = state.receiver.consume(fragment)
            if message is not None and message.msgtype == "PATCH-DOC":
                check_patch(message.content, state.limits)
        except MessageLimitError as exc:
            self._over_limit(conn, exc)
            return 0.0
        except Exception as exc:
            self._malformed(conn, exc)
            return 0.0
        state.expect_header = message is not None
        if message is None:
            return 0.0
        state.message_bytes = state.text_frames = state.message_values = 0
        self._dispatch(conn, message)
        held_s = time.perf_counter() - started
        return held_s if held_s > YIELD_AFTER_S else 0.0

    def _check_header(self, fragment: Fragment) -> None:
        if not isinstance(fragment, str):
            raise ValueError("expected a text header frame, got binary")
        header = json.loads(fragment)
        if not isinstance(header, dict):
            raise ValueError("header must be a JSON object")
        msgtype = header.get("msgtype")
        if msgtype not in CLIENT_MSGTYPES:
            raise ValueError(f"unknown msgtype {str(msgtype)[:40]!r}")
        num_buffers = header.get("num_buffers", 0)
        if not isinstance(num_buffers, int) or not 0 <= num_buffers <= MAX_BUFFERS:
            raise ValueError(f"num_buffers must be an int in 0..{MAX_BUFFERS}")

    def _over_limit(self, conn: Connection, exc: MessageLimitError) -> None:
        log.warning("closing connection: %s; if legitimate clients send such messages, raise it with "
                    "--message-limit %s=N (session=%s)", exc, exc.limit, self.session.id)
        self.detach(conn)
        conn.close(CloseCode.MESSAGE_TOO_COMPLEX, str(exc)[:120])

    def _malformed(self, conn: Connection, exc: Exception) -> None:
        reason = f"malformed message: {type(exc).__name__}: {exc}"[:120]
        log.warning("closing connection: %s (session=%s)", reason, self.session.id)
        self.detach(conn)
        conn.close(CloseCode.MALFORMED, reason)

    def _dispatch(self, conn: Connection, message: Message[Any]) -> None:
        msgtype = message.msgtype
        msgid = message.header["msgid"]
        if msgtype == "PULL-DOC-REQ":
            state = self._connections.get(conn)
            if state is not None:
                state.pulled = True
            conn.send_frames(self._pull_doc_reply(msgid))
        elif msgtype == "PATCH-DOC":
            self._apply_patch(conn, message)
        elif msgtype == "SERVER-INFO-REQ":
            self._send(conn, protocol.create("SERVER-INFO-REPLY", msgid))
        elif msgtype == "PUSH-DOC":
            log.warning("refused PUSH-DOC from a client (session=%s)", self.session.id)
            self._send(conn, protocol.create("ERROR", msgid, "PUSH-DOC from a client is not allowed"))
        # ACK/OK/ERROR from a client need no reply

    def _apply_patch(self, conn: Connection, message: Message[Any]) -> None:
        msgid = message.header["msgid"]
        session = self.session
        # Send what is queued first: applying a patch marks every model the Document has as known
        # to the browser, including models created since the last flush that it has never seen.
        self._flush()
        session.busy_enter()
        try:
            with activate(session):
                message.apply_to_document(self.document, conn)  # type: ignore[attr-defined]  # a PATCH-DOC message
        except Exception as exc:
            callback_failed("applying a PATCH-DOC (a browser change and the callbacks it ran)", session, exc, self._errors)
            self._send(conn, protocol.create("ERROR", msgid, f"{type(exc).__name__}: {exc}"[:500]))
        else:
            self._send(conn, protocol.create("OK", msgid))
        finally:
            session.busy_exit()
        self._flush()

    def _pull_doc_reply(self, request_id: ID) -> list[Fragment]:
        """The PULL-DOC-REPLY's frames: made once per state of the Document (its header is new each time).

        Every change to the Document's models, roots or title comes through
        ``on_change`` and makes the next reply anew; so does a Document on hold
        (its changes are held back from ``on_change``) or one with JS event
        callbacks (not reported as changes). ``doc.config``, which Bokeh never
        patches into an open page either, is read again on the next change.
        """
        cached = self._pull_reply
        document = self.document
        reusable = document.callbacks.hold_value is None and not document.callbacks.js_event_callbacks
        if reusable and cached is not None and cached[0] == self._changes:
            header = pull_doc_reply.create_header(request_id=request_id)
            if len(cached[1]) > 2:
                header["num_buffers"] = (len(cached[1]) - 2) // 2
            return [json.dumps(header), *cached[1]]
        changes = self._changes
        frames = message_frames(pull_doc_reply_message(request_id, document))
        if reusable and changes == self._changes:
            self._pull_reply = (changes, frames[1:])
        return frames

    def _send(self, conn: Connection, message: Message[Any]) -> None:
        if conn in self._connections:
            conn.send_frames(message_frames(message))

    # -- outgoing -------------------------------------------------------------
    def _document_changed(self, event: Any) -> None:
        self._changes += 1
        if not isinstance(event, DocumentPatchedEvent):
            return
        with self._pending_lock:
            self._pending.append(event)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        loop = self.session.event_loop()
        if loop is None:
            self._flush()
        else:
            loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._pending_lock:
            events, self._pending = self._pending, []
            self._flush_scheduled = False
        if not events or not self._connections:
            return
        cache: dict[tuple[int, ...], list[Fragment]] = {}
        for conn, state in list(self._connections.items()):
            if not state.pulled:
                continue
            mine = [e for e in events if e.setter is not conn]  # type: ignore[comparison-overlap]  # the setter is ours
            if not mine:
                continue
            key = tuple(id(e) for e in mine)
            frames = cache.get(key)
            if frames is None:
                try:
                    frames = cache[key] = message_frames(protocol.create("PATCH-DOC", mine))
                except Exception:
                    log.exception("could not serialize a patch (session=%s)", self.session.id)
                    return
            conn.send_frames(frames)
