"""Writing Bokeh-protocol frames to a browser WebSocket.

:class:`FrameWriter` is the :class:`~kernelstate.endpoint.Connection` side of a
session WebSocket, mixed into a Tornado ``WebSocketHandler`` (before it) by the
standalone server's handler and by the Jupyter extension's relay sockets.

Invariant: a tab that asks for replies and never reads them cannot grow the
server's memory without bound; past :func:`write_buffer_limit` queued bytes its
connection is dropped.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError

from ..endpoint import Fragment
from .wire import server_frames

log = logging.getLogger(__name__)
MIN_WRITE_BUFFER_BYTES = 8 * 1024 * 1024


def write_buffer_limit(max_message_bytes: int) -> int:
    """Bytes queued for one tab before it counts as not reading (and is dropped)."""
    return max(4 * max_message_bytes, MIN_WRITE_BUFFER_BYTES)


class FrameWriter:
    """Write frames, close once, drop non-readers."""

    session_id: str | None = None
    _closed = False

    def cap_write_buffer(self: Any) -> None:
        """Without a cap, a tab that asks for replies and never reads them grows the write buffer without bound."""
        assert self.ws_connection is not None
        self.ws_connection.stream.max_write_buffer_size = write_buffer_limit(self.max_message_size)

    def send_frames(self: Any, frames: Sequence[Fragment]) -> None:
        if self._closed or self.ws_connection is None:
            return
        try:
            if self.get_compression_options() is None:  # one write (and one send) for the whole message
                if self.ws_connection.is_closing():
                    raise WebSocketClosedError()
                self.ws_connection.stream.write(server_frames(frames)).add_done_callback(_closed_is_fine)
            else:
                for frame in frames:
                    self.write_message(frame, binary=isinstance(frame, bytes)).add_done_callback(_closed_is_fine)
        except (WebSocketClosedError, StreamClosedError):
            self._closed = True
        except StreamBufferFullError:
            # A close frame would queue behind what the tab is not reading: drop the connection.
            log.warning("dropping a WebSocket whose client is not reading (%d bytes queued) (session=%s)",
                        self.ws_connection.stream.max_write_buffer_size or 0, self.session_id)
            self._closed = True
            self.ws_connection.stream.close()

    def close(self: Any, code: int | None = None, reason: str | None = None) -> None:
        self._closed = True
        super().close(code, reason)  # type: ignore[misc]


def _closed_is_fine(future: Any) -> None:
    # A write that fails because the tab went away (with writes still queued) needs no report;
    # unretrieved, it would be logged as "Task exception was never retrieved".
    if not future.cancelled():
        future.exception()
