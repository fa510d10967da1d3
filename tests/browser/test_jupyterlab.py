"""kernelstate in JupyterLab 4 and Notebook 7, in real headless Chromium, with token auth and XSRF on.

One ``jupyter lab`` (which also serves Notebook 7) runs for the module, with the
extension enabled by its installed config: live cell outputs in both UIs, the
kernel-restart banner, an app page served by the extension (and its banner
when the app's kernel is killed), and an untrusted output's static snapshot.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import nbformat
import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install kernelstate[jupyter])")
pytest.importorskip("notebook", reason="Notebook 7 is not installed (pip install kernelstate[jupyter])")

CELL = """import kernelstate as ks
ks.extension(comms="relay")  # these tests are about the relay; with anywidget installed "auto" would pick the widget view
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
shown = ks.pane.Markdown("n is 3")
slider.param.watch(lambda event: setattr(shown, "object", f"n is {event.new}"), "value")
ks.Column(slider, shown)"""

APP = """import kernelstate as ks
clicks = ks.pane.Markdown("clicks: 0")
button = ks.widgets.Button(name="Count")
button.on_click(lambda event: setattr(clicks, "object", f"clicks: {button.clicks}"))
ks.Column(button, clicks).servable(title="Counter")
"""


@dataclass
class Jupyter:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path

    def api(self, path: str, method: str = "GET") -> Any:
        request = Request(self.url + path, method=method, data=b"" if method == "POST" else None,
                          headers={"Authorization": f"token {self.token}"})
        with urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None


def untrusted_notebook() -> Any:
    """A notebook saved elsewhere with a kernelstate output (unsigned, so Jupyter does not trust it)."""
    import kernelstate as ks
    from kernelstate.jupyter.comm import kernel_documents
    from kernelstate.jupyter.display import mimebundle
    from kernelstate.jupyter.wire import MIME_TYPE

    data, _ = mimebundle(ks.Column(ks.widgets.IntSlider(name="saved", value=6, end=9), ks.pane.Markdown("saved *snapshot*")))
    kernel_documents().destroy(data[MIME_TYPE]["doc_id"])  # only the output is kept
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ks.Column(...)")
    cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=1)]
    nb.cells = [cell]
    return nb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: Any) -> Iterator[Jupyter]:
    """``jupyter lab`` (which also serves Notebook 7's /notebooks/) with the extension, on a free port."""
    home = tmp_path_factory.mktemp("jupyter-home")
    root = tmp_path_factory.mktemp("notebooks")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, root / "demo.ipynb")
    nb.cells = [nbformat.v4.new_code_cell(CELL.replace('ks.extension(comms="relay")', "ks.extension(comms='auto')"))]
    nbformat.write(nb, root / "auto.ipynb")
    (root / "counter.py").write_text(APP)
    nbformat.write(untrusted_notebook(), root / "saved.ipynb")
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "PYTHONUNBUFFERED": "1"}
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    log = home / "jupyter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
             "--KernelstateApp.kernel_pool_size=0", "--allow-root"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Jupyter(proc, f"http://127.0.0.1:{port}/", token, log)
    deadline = time.monotonic() + 90
    while True:
        try:
            server.api("api/status")
            break
        except (URLError, ConnectionError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("jupyter lab did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
    yield server
    for kernel in server.api("api/kernels"):
        server.api(f"api/kernels/{kernel['id']}", method="DELETE")
    proc.terminate()
    try:
        # Its kernels are gone; an idle anyio worker thread can keep the process
        # alive for another ~10 s after shutdown, which is not worth waiting for.
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.2)


def wait_for_idle_kernel(jupyter: Jupyter, timeout: float = 60) -> None:
    """Until the notebook's kernel (started by the page) is idle, so Shift+Enter runs the cell at once."""
    deadline = time.monotonic() + timeout
    while not any(s["kernel"]["execution_state"] == "idle" for s in jupyter.api("api/sessions")):
        assert time.monotonic() < deadline, "the notebook's kernel did not become idle"
        time.sleep(0.3)


def run_first_cell_and_drag(page: Any, jupyter: Jupyter) -> None:
    page.locator(".jp-Cell .cm-content").first.wait_for(timeout=60000)
    wait_for_idle_kernel(jupyter)
    page.locator(".jp-Cell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")
    output = page.locator(".ks-cell").first
    output.wait_for(timeout=60000)
    page.wait_for_selector(".ks-cell[data-ks-live='1']", timeout=30000)
    # BokehJS renders into shadow roots; Playwright's text locators look inside them.
    live = output.locator(".ks-cell-roots")
    live.get_by_text("n is 3").wait_for(timeout=10000)
    # Drag the slider's handle to the right end: the kernel's callback sets the pane's text.
    handle = live.locator(".noUi-handle").first
    track = live.locator(".noUi-base").first
    box, end = handle.bounding_box(), track.bounding_box()
    assert box is not None and end is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] + 20, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    live.get_by_text("n is 10").wait_for(timeout=15000)
    assert slider_title(page) == "n: 10"


def slider_title(page: Any) -> str:
    """The slider's title as BokehJS shows it (inside its shadow root)."""
    return str(page.locator(".ks-cell-roots").first.get_by_text("n:").first.inner_text()).replace("\n", " ").strip()


def kernelstate_errors(page: Any) -> list[str]:
    return [e for e in page.errors if "kernelstate" in e or "Bokeh" in e or "bokeh" in e]


def test_jupyterlab_cell_output_is_live(page: Any, jupyter: Jupyter) -> None:
    """In JupyterLab, a cell showing a slider and a pane: dragging the slider updates the pane from the kernel."""
    page.goto(jupyter.url + f"lab/tree/demo.ipynb?token={jupyter.token}")
    run_first_cell_and_drag(page, jupyter)
    # Clearing the output closes its connection (after a short grace period); running the cell again is live again.
    assert jupyter.api("kernelstate/api/ping")["comms"] == 1
    page.locator(".lm-MenuBar-itemLabel", has_text="Edit").click()
    page.locator(".lm-Menu-itemLabel", has_text="Clear Outputs of All Cells").click()
    wait_until(lambda: jupyter.api("kernelstate/api/ping")["comms"] == 0, 15, "the cleared output's comm closed")
    page.locator(".jp-Cell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_selector(".ks-cell[data-ks-live='1']", timeout=30000)
    assert jupyter.api("kernelstate/api/ping")["comms"] == 1
    # A kernel restart turns the output into a clear "re-run the cell" state.
    kernels = jupyter.api("api/kernels")
    assert len(kernels) == 1
    jupyter.api(f"api/kernels/{kernels[0]['id']}/restart", method="POST")
    banner = page.locator(".ks-cell .ks-cell-banner").first
    banner.wait_for(timeout=15000)
    assert "re-run the cell" in banner.inner_text()
    assert not kernelstate_errors(page), page.errors


def test_notebook7_cell_output_is_live(page: Any, jupyter: Jupyter) -> None:
    """The same in Notebook 7 (/notebooks/): the output is live through the same relay."""
    for kernel in jupyter.api("api/kernels"):
        jupyter.api(f"api/kernels/{kernel['id']}", method="DELETE")
    for session in jupyter.api("api/sessions"):
        jupyter.api(f"api/sessions/{session['id']}", method="DELETE")
    page.goto(jupyter.url + f"notebooks/demo.ipynb?token={jupyter.token}")
    run_first_cell_and_drag(page, jupyter)
    assert not kernelstate_errors(page), page.errors
    # Closing the notebook's page closes the output's connection to the kernel.
    page.goto("about:blank")
    wait_until(lambda: jupyter.api("kernelstate/api/ping")["comms"] == 0, 10, "the closed page's comm closed")


def test_app_page_served_by_the_extension_reports_its_kernel_dying(page: Any, jupyter: Jupyter) -> None:
    """An app at kernelstate/apps/ runs in its own kernel; SIGKILL that kernel and the page says so within seconds."""
    page.goto(jupyter.url + f"kernelstate/apps/counter.py?token={jupyter.token}")
    page.get_by_role("button", name="Count").click(timeout=60000)
    page.get_by_text("clicks: 1").wait_for(timeout=15000)
    assert page.title() == "Counter"
    (session,) = jupyter.api("kernelstate/api/sessions")
    assert session["kernel_id"] in {k["id"] for k in jupyter.api("api/kernels")}
    os.kill(kernel_pid(jupyter, session["kernel_id"]), signal.SIGKILL)
    banner = page.locator("#ks-banner")
    banner.wait_for(timeout=5000)
    assert "reload the page" in banner.inner_text()
    assert jupyter.api("api/status")["started"]


def kernel_pid(jupyter: Jupyter, kernel_id: str) -> int:
    """The process id of one of the server's kernels (its command line names its connection file)."""
    psutil = pytest.importorskip("psutil")
    for proc in psutil.Process(jupyter.proc.pid).children(recursive=True):
        if any(kernel_id in part for part in proc.cmdline()):
            return int(proc.pid)
    raise AssertionError(f"no process for kernel {kernel_id}")


def test_untrusted_notebook_shows_the_static_snapshot(page: Any, jupyter: Jupyter) -> None:
    """An untrusted saved output runs no script, yet shows the snapshot: the slider's value and the text."""
    page.goto(jupyter.url + f"lab/tree/saved.ipynb?token={jupyter.token}")
    static = page.locator(".ks-cell-static").first
    static.wait_for(timeout=60000)
    assert "saved: 6" in static.inner_text() and "saved snapshot" in static.inner_text()
    assert page.locator(".ks-cell[data-ks-mounted]").count() == 0   # the runtime did not run


def test_auto_transport_goes_live_once_per_view(page: Any, jupyter: Jupyter) -> None:
    """comms="auto" with the extension AND a widget manager: the widget view goes live, the relay never connects."""
    pytest.importorskip("anywidget", reason="the widget transport needs anywidget")
    for kernel in jupyter.api("api/kernels"):
        jupyter.api(f"api/kernels/{kernel['id']}", method="DELETE")
    for session in jupyter.api("api/sessions"):
        jupyter.api(f"api/sessions/{session['id']}", method="DELETE")
    page.goto(jupyter.url + f"lab/workspaces/auto/tree/auto.ipynb?token={jupyter.token}")
    cell = page.locator(".jp-Cell .cm-content").first   # a workspace of its own: demo.ipynb is not restored
    cell.wait_for(timeout=60000)
    wait_for_idle_kernel(jupyter)
    cell.click()
    page.keyboard.press("Shift+Enter")
    page.locator(".ks-widget[data-ks-live='1']").wait_for(timeout=60000)
    page.locator(".ks-widget-roots").get_by_text("n is 3").wait_for(timeout=10000)
    time.sleep(1)   # time enough for a second transport to connect, were there one
    assert page.locator(".ks-widget").count() == 1 and page.locator(".ks-cell[data-ks-mounted]").count() == 0
    assert jupyter.api("kernelstate/api/ping")["comms"] == 0     # no relayed connection
    assert not kernelstate_errors(page), page.errors
