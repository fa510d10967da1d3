"""A Bokeh message's WebSocket frames as one byte string, for one write to the socket.

Tornado's ``write_message`` writes one frame per call, so a Bokeh message
(header, metadata, content and a pair of frames per buffer) took three or more
``send`` calls, each woken up separately at the other end. :func:`server_frames`
encodes them the way Tornado's ``WebSocketProtocol13`` does for a server
(RFC 6455 section 5.2: FIN set, no mask, no extension bits) so that
:class:`~kernelstate.web.frames.FrameWriter` writes them in one go. It is only
used on connections without compression (``get_compression_options`` None),
where the frames Tornado would have written are exactly these bytes
(``tests/unit/test_wire.py`` compares them).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence

from ..endpoint import Fragment

__all__ = ["server_frames"]

_FIN = 0x80
_TEXT, _BINARY = 0x1, 0x2


def server_frames(fragments: Sequence[Fragment]) -> bytes:
    """The unmasked, uncompressed frames of ``fragments`` (str: a text frame, bytes: a binary frame)."""
    parts: list[bytes] = []
    for fragment in fragments:
        if isinstance(fragment, str):
            payload, opcode = fragment.encode("utf-8"), _TEXT
        else:
            payload, opcode = bytes(fragment), _BINARY
        size = len(payload)
        if size < 126:
            parts.append(struct.pack("!BB", _FIN | opcode, size))
        elif size <= 0xFFFF:
            parts.append(struct.pack("!BBH", _FIN | opcode, 126, size))
        else:
            parts.append(struct.pack("!BBQ", _FIN | opcode, 127, size))
        parts.append(payload)
    return b"".join(parts)
