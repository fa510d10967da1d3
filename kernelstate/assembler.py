"""Bokeh protocol messages put together from their frames, one frame at a time, synchronously.

A message is three text frames (header, metadata, content) and then, for
each of the header's ``num_buffers``, a text buffer header ``{"id": ...}``
and a binary payload. Bokeh's own ``Receiver`` does the same behind a
coroutine that never waits; assembling in a plain call lets a WebSocket
frame be handled where it is read, with no task per frame. Messages are
made by Bokeh's ``Protocol.assemble`` and ``Message.assemble_buffer``, and a
frame out of place raises Bokeh's ``ValidationError`` as its receiver would.
"""
from __future__ import annotations

import json
from typing import Any

from bokeh.protocol import Protocol
from bokeh.protocol.exceptions import ValidationError
from bokeh.protocol.message import BufferHeader, Message

Fragment = str | bytes


class Assembler:
    """Feed frames in wire order; :meth:`consume` returns each message once its last frame is in."""

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self._texts: list[str] = []                 # header, metadata, content of the message under way
        self._partial: Message[Any] | None = None   # assembled from those, waiting for its buffers
        self._buffer_id: Any = None                 # the buffer header just read, waiting for its payload

    def consume(self, fragment: Fragment) -> Message[Any] | None:
        partial = self._partial
        if partial is None:
            self._texts.append(_text(fragment, ("header", "metadata", "content")[len(self._texts)]))
            if len(self._texts) < 3:
                return None
            header, metadata, content = self._texts
            self._texts = []
            partial = self._protocol.assemble(header, metadata, content)
        elif self._buffer_id is None:
            buffer_header = json.loads(_text(fragment, "buffer header"))
            if not isinstance(buffer_header, dict) or set(buffer_header) != {"id"}:
                raise ValidationError(f"Malformed buffer header {buffer_header!r}")
            self._buffer_id = buffer_header["id"]
            return None
        else:
            if not isinstance(fragment, bytes):
                raise ValidationError("expected a binary buffer payload, received a text frame")
            partial.assemble_buffer(BufferHeader(id=self._buffer_id), fragment)
            self._buffer_id = None
        if partial.complete:
            self._partial = None
            return partial
        self._partial = partial
        return None


def _text(fragment: Fragment, part: str) -> str:
    if not isinstance(fragment, str):
        raise ValidationError(f"expected a text {part} frame, received a binary frame")
    return fragment
