"""Issue 14 in the Jupyter extension host: a coroutine on_click of a component in a notebook cell runs
in that cell's session, its failure reaches ks.config.exception_handler, and it is cancelled when the
cell's Document is destroyed."""
from __future__ import annotations

import asyncio
from typing import Any

from bokeh.models import Button
from jupyter_helpers import doc_output

ASYNC_CELL = """
import asyncio
import kernelstate as ks

record = []
button = ks.widgets.Button(name="go")

async def go(event):
    record.append(["started", ks.state.session_id])
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record.append(["cancelled", ks.state.session_id])
        raise

async def fail(event):
    await asyncio.sleep(0)
    raise RuntimeError("cell click broke")

button.on_click(go)
button.on_click(fail)
ks.config.exception_handler = lambda exc: record.append(["handled " + repr(exc), ks.state.session_id])
button
"""


async def wait_value(kernel: Any, expr: str, predicate: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await kernel.value(expr)
        if predicate(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_async_on_click_in_a_cell_belongs_to_the_cell_session(user_kernel: Any, relay_client: Any,
                                                                    ks_ext: Any) -> None:
    out = doc_output(await user_kernel.run(ASYNC_CELL))
    sid = out["doc_id"]
    async with relay_client(out) as tab:
        await tab.click(tab.find(Button)[0])
        record = await wait_value(user_kernel, "record", lambda r: len(r) >= 2)
    assert ["started", sid] in record
    assert ["handled RuntimeError('cell click broke')", sid] in record
    await user_kernel.run(f"from kernelstate.jupyter.comm import kernel_documents\nkernel_documents().destroy({sid!r})")
    record = await wait_value(user_kernel, "record", lambda r: ["cancelled", sid] in r)
    assert ["cancelled", sid] in record
