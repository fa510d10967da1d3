"""The PULL-DOC reply is made once per state of the Document, and frames are assembled without a task (issue 20).

A second pull of an unchanged Document answers the same frames after a new
header; any change (a value, the title, a root, a streamed column, a change
made on hold) makes the next reply anew. Each reply is compared with what
Bokeh itself makes of the Document at that moment.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import Column, ColumnDataSource, DataTable, Div, Slider, TableColumn
from bokeh.protocol import Protocol
from bokeh.protocol.exceptions import ValidationError
from bokeh.protocol.receiver import Receiver

from kernelstate.assembler import Assembler
from kernelstate.endpoint import DocumentEndpoint, Fragment, message_frames
from kernelstate.session import Session

protocol = Protocol()


class Frames:
    """A Connection that keeps what is written to it."""

    def __init__(self) -> None:
        self.writes: list[list[Fragment]] = []

    def send_frames(self, frames: Sequence[Fragment]) -> None:
        self.writes.append(list(frames))

    def close(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed {code} {reason}")


def pull(endpoint: DocumentEndpoint, conn: Frames) -> tuple[dict[str, Any], list[Fragment]]:
    request = protocol.create("PULL-DOC-REQ")
    for frame in message_frames(request):
        endpoint.receive(conn, frame)
    reply = conn.writes[-1]
    header = json.loads(reply[0])
    assert header["msgtype"] == "PULL-DOC-REPLY" and header["reqid"] == request.header["msgid"]
    return header, reply[1:]


def bokeh_reply(doc: Document) -> list[Fragment]:
    """What Bokeh's own PULL-DOC-REPLY says after its header (metadata, content, buffers)."""
    return message_frames(protocol.create("PULL-DOC-REPLY", "x", doc))[1:]


def by_position(frames: list[Fragment]) -> tuple[Any, list[bytes]]:
    """The content with each buffer's id replaced by its position (ids are drawn anew per serialization)."""
    content = str(frames[1])
    refs = [json.loads(f)["id"] for f in frames[2::2]]
    for i, ref in enumerate(refs):
        content = content.replace(json.dumps(ref), f'"buffer-{i}"')
    return json.loads(content), [f for f in frames[3::2] if isinstance(f, bytes)]


def same_document(ours: list[Fragment], doc: Document) -> None:
    assert by_position(ours) == by_position(bokeh_reply(doc))


def changes() -> list[tuple[str, Callable[[Document, dict[str, Any]], None]]]:
    def value(doc: Document, m: dict[str, Any]) -> None:
        m["slider"].value = 7

    def title(doc: Document, m: dict[str, Any]) -> None:
        doc.title = "another title"

    def root(doc: Document, m: dict[str, Any]) -> None:
        doc.add_root(Div(text="a second root"))

    def child(doc: Document, m: dict[str, Any]) -> None:
        m["column"].children.append(Div(text="appended in place"))

    def stream(doc: Document, m: dict[str, Any]) -> None:
        m["source"].stream({"x": np.arange(3.0), "y": np.arange(3.0)})

    def on_hold(doc: Document, m: dict[str, Any]) -> None:
        doc.hold("combine")  # the change is held back from on_change until unhold
        m["slider"].end = 50

    return [("value", value), ("title", title), ("root", root), ("child in place", child),
            ("stream", stream), ("on hold", on_hold)]


@pytest.mark.parametrize("name, change", changes(), ids=[n for n, _ in changes()])
def test_a_pull_again_is_the_same_reply_until_the_document_changes(name: str, change: Callable[..., None]) -> None:
    async def main() -> None:
        session = Session(loop=asyncio.get_running_loop())
        doc = session.document
        assert doc is not None
        slider = Slider(start=0, end=10, value=1)
        source = ColumnDataSource({"x": np.arange(5.0), "y": np.arange(5.0) * 2})
        column = Column(children=[slider, DataTable(source=source, columns=[TableColumn(field="x")])])
        doc.add_root(column)
        doc.title = "first"
        endpoint = DocumentEndpoint(session)
        conn = Frames()
        endpoint.attach(conn)
        header1, first = pull(endpoint, conn)
        same_document(first, doc)
        header2, again = pull(endpoint, conn)
        assert again == first and header2["msgid"] != header1["msgid"]
        assert header2.get("num_buffers") == header1.get("num_buffers") == 2  # the two float64 columns
        change(doc, {"slider": slider, "source": source, "column": column})
        _, changed = pull(endpoint, conn)
        assert changed[1] != first[1] or changed[2:] != first[2:], f"the reply after '{name}' was the old one"
        same_document(changed, doc)
        if doc.callbacks.hold_value is not None:
            doc.unhold()
        session.destroy()

    asyncio.run(main())


def test_frames_assemble_as_bokehs_receiver_does() -> None:
    async def main() -> None:
        doc = Document()
        source = ColumnDataSource({"x": np.arange(4.0)})
        doc.add_root(source)
        events: list[Any] = []
        doc.on_change(events.append)
        source.stream({"x": np.arange(2.0)})
        messages = [protocol.create("PULL-DOC-REQ"), protocol.create("PATCH-DOC", events),
                    protocol.create("PULL-DOC-REPLY", "r", doc)]
        ours, theirs = Assembler(protocol), Receiver(protocol)
        for message in messages:
            frames = message_frames(message)
            got = [ours.consume(f) for f in frames]
            want = [await theirs.consume(f) for f in frames]
            assert [g is None for g in got] == [w is None for w in want]
            a, b = got[-1], want[-1]
            assert a is not None and b is not None
            assert (a.header, a.metadata, a.content) == (b.header, b.metadata, b.content)
            assert [x.to_bytes() for x in a.buffers] == [x.to_bytes() for x in b.buffers]

    asyncio.run(main())


@pytest.mark.parametrize("frames", [
    [b"{}"],                                             # a binary header
    ['{"msgid":"1","msgtype":"ACK"}', "{}", b"{}"],       # binary content
    ['{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":1}', "{}", '{"events":[]}', '{"id":"1","x":2}'],
    ['{"msgid":"1","msgtype":"PATCH-DOC","num_buffers":1}', "{}", '{"events":[]}', '{"id":"1"}', "text"],
], ids=["binary header", "binary content", "buffer header with more than an id", "text payload"])
def test_a_frame_out_of_place_is_refused(frames: list[Fragment]) -> None:
    assembler = Assembler(protocol)
    with pytest.raises(ValidationError):
        for frame in frames:
            assembler.consume(frame)
