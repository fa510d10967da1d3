"""A message's frames written at once are the frames Tornado writes one by one (RFC 6455, server side)."""
from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from kernelstate.web.wire import server_frames


def reference(fragment: str | bytes) -> bytes:
    """An independent encoder (the ``websockets`` library's), unmasked as a server sends."""
    if isinstance(fragment, str):
        return Frame(Opcode.TEXT, fragment.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, fragment).serialize(mask=False)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_every_length_encoding(size: int) -> None:
    text, data = "é" * (size // 2) + "x" * (size % 2), bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert server_frames([text]) == reference(text)
    assert server_frames([data]) == reference(data)


def test_a_message_is_its_frames_in_order() -> None:
    fragments: list[str | bytes] = ['{"msgtype":"PATCH-DOC","num_buffers":1}', "{}", '{"events":[]}',
                                    '{"id":"1"}', b"\x00\x01\x02"]
    assert server_frames(fragments) == b"".join(reference(f) for f in fragments)
