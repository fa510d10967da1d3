"""The extension's message limits hold in the kernel too: a relayed message over them closes with 4009."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from bokeh.models import Slider
from bokeh.protocol import Protocol

from jupyter_helpers import doc_output, server_config

from kernelstate.testing.client import ClosedError

protocol = Protocol()

CELL = """
import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
ks.Column(slider)
"""


@pytest.fixture
def jp_server_config() -> Any:
    return server_config(message_limits={"models": 2})


def defining(target: str, count: int) -> Any:
    """A PATCH-DOC whose ``tags`` change defines ``count`` new Div models."""
    new = [{"type": "object", "name": "Div", "id": f"d-{uuid.uuid4().hex}"} for _ in range(count)]
    content = {"events": [{"kind": "ModelChanged", "model": {"id": target}, "attr": "tags", "new": new}]}
    header = {"msgid": uuid.uuid4().hex, "msgtype": "PATCH-DOC", "num_buffers": 0}
    return protocol.assemble(json.dumps(header), "{}", json.dumps(content))


async def test_a_relayed_message_over_the_configured_limit_is_refused_in_the_kernel(
        user_kernel: Any, relay_client: Any, ks_ext: Any) -> None:
    """KernelstateApp.message_limits = {"models": 2}: 2 new models are applied, 3 close the connection with
    4009 naming the limit; the document stays live for a new connection."""
    out = doc_output(await user_kernel.run(CELL))
    async with relay_client(out) as tab:
        slider = tab.find(Slider)[0]
        assert (await tab.request(defining(slider.id, 2))).msgtype == "OK"
        try:
            reply = await tab.request(defining(slider.id, 3))
        except ClosedError as exc:
            assert exc.code == 4009 and "models limit" in (exc.reason or ""), (exc.code, exc.reason)
        else:
            raise AssertionError(f"a message over the limit was answered with {reply.msgtype}")
    async with relay_client(out) as again:
        await again.set(again.find(Slider)[0], "value", 7)
        assert await user_kernel.value("slider.value") == 7
