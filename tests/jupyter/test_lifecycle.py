"""Cell outputs and app sessions through kernel restarts, deaths, re-runs and several views."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from bokeh.models import Slider
from jupyter_helpers import doc_output

from kernelstate.endpoint import CloseCode
from kernelstate.testing.client import ProtocolClient

SLIDER = """
import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=1)
slider
"""
OTHER_APP = """
import kernelstate as ks
slider = ks.widgets.IntSlider(name="o", start=0, end=10, value=1)
echo = ks.pane.Str("other sees 1")
slider.param.watch(lambda e: setattr(echo, "object", f"other sees {e.new}"), "value")
ks.Column(slider, echo).servable()
"""
LIVE_CONNECTIONS = "[len(d.connections) for d in __import__('kernelstate.jupyter.comm', fromlist=['x']).kernel_documents().documents()]"


async def closed_within(tab: ProtocolClient, seconds: float) -> tuple[int | None, str | None]:
    start = time.monotonic()
    code, reason = await tab.wait_closed(seconds)
    assert time.monotonic() - start <= seconds
    return code, reason


async def test_several_views_stay_in_sync_and_bad_tokens_are_refused(user_kernel: Any, relay_client: Any,
                                                                    ks_ext: Any) -> None:
    """Two views of one output share its Document; a wrong token is refused; a closed view detaches in the kernel."""
    out = doc_output(await user_kernel.run(SLIDER))
    async with relay_client(out, view="a") as a, relay_client(out, view="b") as b:
        assert await user_kernel.value(LIVE_CONNECTIONS) == [2]
        await a.set(a.find(Slider)[0], "value", 4)
        await b.wait_for(lambda: b.find(Slider)[0].value == 4)
        assert await user_kernel.value("slider.value") == 4
        # The same component shown by a second cell is a second, independent Document.
        out2 = doc_output(await user_kernel.run("slider"))
        async with relay_client(out2) as c:
            assert c.find(Slider)[0].value == 4
            await c.set(c.find(Slider)[0], "value", 6)
            await a.wait_for(lambda: a.find(Slider)[0].value == 6)
    deadline = time.monotonic() + 10
    while await user_kernel.value(LIVE_CONNECTIONS) != [0, 0]:
        assert time.monotonic() < deadline, "closed views were not detached in the kernel"
        await asyncio.sleep(0.1)
    forged = relay_client(out, token=out["token"][:-4] + "AAAA")
    try:
        await forged.connect()
        raise AssertionError("a forged token was accepted")
    except ConnectionError:
        pass
    assert (forged.close_code, forged.close_reason) == (CloseCode.FORBIDDEN, "invalid document token")


async def test_rerunning_a_cell_closes_its_output(user_kernel: Any, relay_client: Any, ks_ext: Any) -> None:
    """Re-running the cell that displayed a Document (same cellId) closes it; other cells' outputs stay live."""
    first = doc_output(await user_kernel.run_cell(SLIDER, cell_id="cell-1"))
    other = doc_output(await user_kernel.run_cell("slider", cell_id="cell-2"))
    async with relay_client(first) as tab, relay_client(other) as stays:
        second = doc_output(await user_kernel.run_cell(SLIDER, cell_id="cell-1"))
        code, reason = await closed_within(tab, 5)
        assert code == CloseCode.SESSION_EXPIRED and "re-run" in (reason or "")
        await stays.set(stays.find(Slider)[0], "value", 2)
        async with relay_client(second) as fresh:
            assert fresh.find(Slider)[0].value == 1


async def test_kernel_restart_gives_outputs_a_clear_state(user_kernel: Any, relay_client: Any, ks_ext: Any,
                                                          jp_fetch: Any, jp_serverapp: Any) -> None:
    """Restarting the kernel closes live outputs with a 're-run the cell' reason; old outputs cannot reconnect."""
    out = doc_output(await user_kernel.run(SLIDER))
    async with relay_client(out) as tab:
        await jp_fetch("api", "kernels", user_kernel.kernel_id, "restart", method="POST", body="")
        code, reason = await closed_within(tab, 5)
        assert code == CloseCode.KERNEL_DIED and "re-run the cell" in (reason or "")
    retry = relay_client(out)
    try:
        await retry.connect()
        raise AssertionError("an output of the previous kernel reconnected")
    except ConnectionError:
        pass
    assert retry.close_code in (CloseCode.SESSION_EXPIRED, CloseCode.KERNEL_DIED)
    assert user_kernel.kernel_id in jp_serverapp.kernel_manager


async def test_sigkill_closes_cells_and_app_sessions_within_seconds(
        user_kernel: Any, relay_client: Any, ks_ext: Any, jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path,
        jp_http_port: int, jp_auth_header: dict[str, str]) -> None:
    """A kernel killed mid-session: its outputs and app pages are told (KERNEL_DIED) within seconds; the server lives,
    and a session in another kernel keeps working (reliability R12)."""
    (jp_root_dir / "app.py").write_text("import kernelstate as ks\nks.pane.Markdown('app up').servable()\n")
    (jp_root_dir / "other.py").write_text(OTHER_APP)
    km = jp_serverapp.kernel_manager
    out = doc_output(await user_kernel.run(SLIDER))
    base = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/"
    async with ProtocolClient(base + "other.py", headers=jp_auth_header, timeout=60) as other:
        other_kernels = {s["kernel_id"] for s in json.loads((await jp_fetch("kernelstate", "api", "sessions")).body)}
        async with relay_client(out) as cell, ProtocolClient(base + "app.py", headers=jp_auth_header, timeout=60) as app:
            sessions = json.loads((await jp_fetch("kernelstate", "api", "sessions")).body)
            app_kernel = next(s["kernel_id"] for s in sessions if s["kernel_id"] not in other_kernels)
            os.kill(km.get_kernel(user_kernel.kernel_id).provisioner.pid, signal.SIGKILL)
            os.kill(km.get_kernel(app_kernel).provisioner.pid, signal.SIGKILL)
            cell_code, cell_reason = await closed_within(cell, 5)
            app_code, app_reason = await closed_within(app, 5)
        # The session in the other app's kernel is untouched: a change still runs its callback.
        await other.set(other.find(Slider)[0], "value", 7)
        await other.wait_for(lambda: "other sees 7" in other.text(), 30)
    assert cell_code == CloseCode.KERNEL_DIED and "re-run the cell" in (cell_reason or "")
    assert app_code == CloseCode.KERNEL_DIED and "reload the page" in (app_reason or "")
    assert (await jp_fetch("api", "status")).code == 200
    # The user's kernel is the server's to restart (it does, by its own policy); the app's is gone for good.
    deadline = time.monotonic() + 15
    while app_kernel in km:
        assert time.monotonic() < deadline, "the dead app kernel was not removed"
        await asyncio.sleep(0.2)
