"""The comm wire format between the server extension and a kernel.

Both sides import this module; it imports nothing from Jupyter.

One comm carries one browser connection to one Document hosted in the
kernel (``op: "connect"``), or the control channel of one served app session
(``op: "app"``). Bokeh protocol frames travel in batches: a comm message's
``data`` is ``{"frames": [...]}`` where a text frame is a string and a binary
frame is ``{"buffer": i}``, the i-th comm buffer. A batch holds whole Bokeh
messages only.

Closing: the side that ends a connection closes its comm with
``{"code": 4xxx, "reason": "..."}``; the relay passes that on as the
WebSocket close code, so the page can show the reason.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import KernelstateError

TARGET = "kernelstate"
MIME_TYPE = "application/vnd.kernelstate.doc+json"
#: Set in the environment of kernels the extension starts for served apps.
APP_KERNEL_ENV = "KERNELSTATE_APP_KERNEL"
MAX_BUFFERS = 64
MAX_FRAMES_PER_BATCH = 4096

Fragment = str | bytes


class WireError(KernelstateError, ValueError):
    """A comm message or a frame sequence that does not follow the format."""


def pack_frames(frames: Sequence[Fragment]) -> tuple[dict[str, Any], list[bytes]]:
    """Frames -> (comm data, comm buffers)."""
    items: list[Any] = []
    buffers: list[bytes] = []
    for frame in frames:
        if isinstance(frame, str):
            items.append(frame)
        else:
            items.append({"buffer": len(buffers)})
            buffers.append(bytes(frame))
    return {"frames": items}, buffers


def unpack_frames(data: Mapping[str, Any], buffers: Sequence[Any]) -> list[Fragment]:
    """(comm data, comm buffers) -> frames; raises WireError on anything else."""
    items = data.get("frames") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or len(items) > MAX_FRAMES_PER_BATCH:
        raise WireError("comm data must be {'frames': [...]}")
    frames: list[Fragment] = []
    for item in items:
        if isinstance(item, str):
            frames.append(item)
        elif isinstance(item, dict) and isinstance(item.get("buffer"), int) and 0 <= item["buffer"] < len(buffers):
            frames.append(bytes(buffers[item["buffer"]]))
        else:
            raise WireError(f"bad frame reference {str(item)[:60]!r}")
    return frames


class MessageAssembler:
    """Groups a browser's frames into whole Bokeh messages.

    A message is a text header (whose ``num_buffers`` says how many buffer
    pairs follow), metadata and content, then ``num_buffers`` pairs of a
    text buffer header and a binary payload.
    """

    def __init__(self) -> None:
        self._frames: list[Fragment] = []
        self._expected = 0

    def feed(self, frame: Fragment) -> list[Fragment] | None:
        """Add a frame; returns the message's frames once complete. Raises WireError."""
        if not self._frames:
            self._expected = 3 + 2 * self._num_buffers(frame)
        self._frames.append(frame)
        if len(self._frames) < self._expected:
            return None
        frames, self._frames = self._frames, []
        return frames

    @staticmethod
    def _num_buffers(frame: Fragment) -> int:
        if not isinstance(frame, str):
            raise WireError("expected a text header frame, got binary")
        try:
            header = json.loads(frame)
        except ValueError:
            raise WireError("the header frame is not JSON") from None
        if not isinstance(header, dict) or not isinstance(header.get("msgtype"), str):
            raise WireError("the header frame must be a JSON object with a msgtype")
        num = header.get("num_buffers", 0)
        if not isinstance(num, int) or not 0 <= num <= MAX_BUFFERS:
            raise WireError(f"num_buffers must be an int in 0..{MAX_BUFFERS}")
        return num


def short_reason(reason: str) -> str:
    """A WebSocket close reason must fit in 123 bytes of UTF-8."""
    return reason.encode("utf-8")[:120].decode("utf-8", "ignore")


def close_data(code: int, reason: str) -> dict[str, Any]:
    return {"code": int(code), "reason": short_reason(reason)}


def close_code(data: Any, default: int, default_reason: str) -> tuple[int, str]:
    """The (code, reason) in a comm_close's data: 4000-4999, or 1009 (message too big)."""
    if isinstance(data, Mapping):
        code, reason = data.get("code"), data.get("reason")
        if isinstance(code, int) and (4000 <= code <= 4999 or code == 1009) and isinstance(reason, str):
            return code, short_reason(reason)
    return default, default_reason
