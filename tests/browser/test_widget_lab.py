"""The widget transport in JupyterLab 4 and Notebook 7 in headless Chromium, with kernelstate's server extension DISABLED.

One ``jupyter lab`` for the module (only the stock server extensions; anywidget's
front-end is a prebuilt lab extension). A cell's output is live over the
widget comm alone: drag the slider, the pane updates from the kernel; a second
cell showing the same slider follows; clearing the outputs destroys their
Documents in the kernel; a kernel restart shows "re-run the cell"; a notebook
closed and reopened while its kernel runs is live again; every request goes to
127.0.0.1.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from widget_browser import (
    COUNT_LIVE,
    Lab,
    drag_to_end,
    foreign_requests,
    jupyter_lab,
    lab_command,
    open_page,
    wait_for_idle_kernel,
    wait_until,
)

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install kernelstate[jupyter])")
pytest.importorskip("anywidget", reason="the widget transport needs anywidget (pip install kernelstate[widgets])")

CELLS = ["""import kernelstate as ks
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=3)
shown = ks.pane.Markdown("n is 3")
slider.param.watch(lambda event: setattr(shown, "object", f"n is {event.new}"), "value")
ks.Column(slider, shown)""", "ks.Row(slider)"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: Any) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("notebooks")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, root / "widget.ipynb")
    nb.cells = nb.cells[:1]
    nbformat.write(nb, root / "nb7.ipynb")
    with jupyter_lab(root, tmp_path_factory.mktemp("lab-home"), extension=False) as server:
        yield server


def test_cells_are_live_over_the_widget_comm_without_the_extension(lab: Lab, browser: Any) -> None:
    """Drag in one output, both outputs follow; clear the outputs, their Documents go; nothing leaves 127.0.0.1."""
    assert "kernelstate.jupyter" not in str(lab.api("api/status")) and _extension_off(lab)
    page = open_page(browser)
    page.goto(lab.url + f"lab/tree/widget.ipynb?token={lab.token}")
    page.locator(".jp-Cell .cm-content").first.wait_for(timeout=60000)
    wait_for_idle_kernel(lab)
    lab_command(page, "notebook:run-all-cells")
    page.wait_for_function("document.querySelectorAll(\".ks-widget[data-ks-live='1']\").length == 2", timeout=60000)
    assert page.locator(".ks-cell[data-ks-mounted]").count() == 0     # the relay's runtime never ran
    first, second = page.locator(".ks-widget-roots").nth(0), page.locator(".ks-widget-roots").nth(1)
    first.get_by_text("n is 3").wait_for(timeout=10000)
    drag_to_end(page, first)
    first.get_by_text("n is 10").wait_for(timeout=15000)
    second.get_by_text("n: 10").wait_for(timeout=15000)             # the second cell's view of the same slider
    assert lab.kernel_value(COUNT_LIVE) == [2, 4, 2]
    assert lab.kernel_value(BOKEHJS_SENT) == 1            # once for the page, not once per output
    # Clearing the outputs removes the views: the kernel destroys their Documents and closes their widgets.
    lab_command(page, "notebook:clear-all-cell-outputs")
    wait_until(lambda: lab.kernel_value(COUNT_LIVE) == [0, 0, 0], 20, "the cleared outputs' sessions were destroyed")
    # A kernel restart (what Kernel > Restart does, without its dialog) turns a live output into a "re-run the cell" notice.
    lab_command(page, "notebook:run-all-cells")
    page.wait_for_function("document.querySelectorAll(\".ks-widget[data-ks-live='1']\").length == 2", timeout=60000)
    page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    banner = page.locator(".ks-widget .ks-cell-banner").first
    banner.wait_for(timeout=20000)
    assert "re-run the cell" in banner.inner_text()
    # Closing the notebook's tab (the kernel keeps running) keeps the outputs' Documents, as JupyterLab keeps the
    # widgets: reopened, the outputs are live again. (Shutting the kernel down ends them.)
    lab_command(page, "notebook:run-all-cells")
    page.wait_for_function("document.querySelectorAll(\".ks-widget[data-ks-live='1']\").length == 2", timeout=60000)
    assert lab.kernel_value(COUNT_LIVE) == [2, 4, 2]
    lab_command(page, "docmanager:save")
    page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=20000)
    lab_command(page, "application:close")
    wait_until(lambda: page.locator(".ks-widget").count() == 0, 20, "the notebook closed")
    assert lab.kernel_value(COUNT_LIVE) == [2, 4, 2]
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'widget.ipynb'})")
    page.wait_for_function("document.querySelectorAll(\".ks-widget[data-ks-live='1']\").length == 2", timeout=60000)
    drag_to_end(page, page.locator(".ks-widget-roots").nth(0))
    page.locator(".ks-widget-roots").nth(0).get_by_text("n is 10").wait_for(timeout=15000)
    assert foreign_requests(page, lab.url.rstrip("/")) == []
    assert not [e for e in page.errors if "kernelstate" in e or "okeh" in e], page.errors


def test_notebook7_cell_is_live_over_the_widget_comm(lab: Lab, browser: Any) -> None:
    """The same in Notebook 7 (/notebooks/, the same server): drag, the pane updates from the kernel."""
    for kernel in lab.api("api/kernels"):
        lab.api(f"api/kernels/{kernel['id']}", method="DELETE")
    for session in lab.api("api/sessions"):
        lab.api(f"api/sessions/{session['id']}", method="DELETE")
    page = open_page(browser)
    page.goto(lab.url + f"notebooks/nb7.ipynb?token={lab.token}")
    page.locator(".jp-Cell .cm-content").first.wait_for(timeout=60000)
    wait_for_idle_kernel(lab)
    page.locator(".jp-Cell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")
    page.locator(".ks-widget[data-ks-live='1']").wait_for(timeout=60000)
    live = page.locator(".ks-widget-roots").first
    live.get_by_text("n is 3").wait_for(timeout=10000)
    drag_to_end(page, live)
    live.get_by_text("n is 10").wait_for(timeout=15000)
    assert foreign_requests(page, lab.url.rstrip("/")) == []


BOKEHJS_SENT = "__import__('kernelstate.jupyter.widget', fromlist=['x']).DocumentWidget.bokehjs_sent"


def _extension_off(lab: Lab) -> bool:
    from urllib.error import HTTPError

    try:
        lab.api("kernelstate/api/ping")
    except HTTPError as exc:
        return exc.code == 404
    return False

