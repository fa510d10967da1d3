"""A browser patch must not make the server forget to send models it created but has not sent yet."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from bokeh.document import Document
from bokeh.models import Column, Div, Slider
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver

from kernelstate.session import Session
from kernelstate.endpoint import DocumentEndpoint, Fragment, message_frames

protocol = Protocol()


class Recorder:
    """A Connection that decodes what the server writes to it."""

    def __init__(self) -> None:
        self.messages: list[object] = []
        self._receiver = Receiver(protocol)

    def send_frames(self, frames: Sequence[Fragment]) -> None:
        async def consume() -> None:
            for frame in frames:
                message = await self._receiver.consume(frame)
                if message is not None:
                    self.messages.append(message)
        asyncio.get_running_loop().create_task(consume())

    def close(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed {code} {reason}")


def test_unsent_new_models_are_sent_before_a_browser_patch_is_applied() -> None:
    """A model added server-side and not flushed yet still reaches the browser with its definition."""

    async def main() -> None:
        session = Session(loop=asyncio.get_running_loop())
        column, slider = Column(children=[]), Slider(start=0, end=10, value=1)
        session.document.add_root(column)
        session.document.add_root(slider)
        endpoint = DocumentEndpoint(session)
        conn = Recorder()
        endpoint.attach(conn)
        replica = Document()
        for frame in message_frames(protocol.create("PULL-DOC-REQ")):
            endpoint.receive(conn, frame)
        await asyncio.sleep(0)
        conn.messages[-1].push_to_document(replica)  # type: ignore[attr-defined]
        replica.models.flush_synced()

        new = Div(text="made by a periodic callback")
        column.children = [new]  # queued: the flush runs on a later loop iteration
        replica_slider = replica.get_model_by_id(slider.id)
        events: list[object] = []
        replica.on_change(events.append)
        replica_slider.value = 5
        for frame in message_frames(protocol.create("PATCH-DOC", events)):
            endpoint.receive(conn, frame)
        await asyncio.sleep(0.05)
        patches = [m for m in conn.messages if m.msgtype == "PATCH-DOC"]  # type: ignore[attr-defined]
        for message in patches:
            message.apply_to_document(replica)  # type: ignore[attr-defined]
        assert replica.get_model_by_id(new.id).text == "made by a periodic callback"
        assert any(new.id in json.dumps(m.content) for m in patches)  # type: ignore[attr-defined]

    asyncio.run(main())
