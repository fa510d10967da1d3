"""``kernelstate export NOTEBOOK --to html [--execute]``: one offline page, every kernelstate output embedded."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from offline_browser import REMOTE_RESOURCE, OfflinePage

import kernelstate as ks
from kernelstate.cli import main
from kernelstate.standalone import STATIC_MIME, bokehjs_inline, snapshot

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "exported.ipynb"   # two kernelstate outputs: widgets, then a plot and the slider again
ROOT = HERE.parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "kernelstate.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "exported.html"
    done = _cli("export", str(NOTEBOOK), "--to", "html", "--execute", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "2 kernelstate output(s)" in done.stdout
    return out


def test_executed_notebook_page_shows_each_output_and_its_plot_offline(
        exported: Path, open_offline: Callable[[Path], OfflinePage]) -> None:
    markup = exported.read_text(encoding="utf-8")
    assert REMOTE_RESOURCE.search(markup) is None, "no script or stylesheet from the network (no CDN)"
    assert markup.count(bokehjs_inline()[0][:200]) == 1, "BokehJS inline once per page, not once per output"
    assert "cellRuntime" not in markup, "the live cell runtime is replaced by the embedded snapshot"

    shown = open_offline(exported)
    page = shown.page
    shown.rendered(roots=2)
    page.get_by_text("Exported offline").first.wait_for()   # the markdown cell
    page.get_by_text("Controls").first.wait_for()            # markdown inside the first component
    # Each output shows the state it was displayed with: 7, then 8 after the second cell's change.
    assert page.locator(".bk-slider-value").all_inner_texts() == ["7", "8"]
    assert page.locator("input[type=text]").first.input_value() == "tulips"
    assert shown.blue_pixels() >= 50, "the plot's line was drawn on a canvas"
    assert shown.remote_requests() == []
    assert shown.errors == []


def test_export_without_execute_uses_saved_outputs_and_needs_no_bokehjs_without_components(tmp_path: Path) -> None:
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Just text.", id="text")])
    source = tmp_path / "plain.ipynb"
    nbformat.write(plain, source)
    assert main(["export", str(source)]) == 0
    markup = (tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "Just text." in markup and "Bokeh.embed" not in markup and len(markup) < len(bokehjs_inline()[0])
    assert REMOTE_RESOURCE.search(markup) is None


def test_export_reports_a_missing_notebook_and_an_unknown_format(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope.ipynb")]) == 1
    assert "is not a notebook file; pass an existing .ipynb file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(NOTEBOOK), "--to", "pdf"])
    assert "invalid choice: 'pdf'" in capsys.readouterr().err


def test_export_refuses_an_output_made_with_another_bokeh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BokehJS is the installed bokeh's: a Document saved by another version may not render, so say so."""
    stale = snapshot(ks.widgets.IntSlider(value=2)).to_json() | {"bokeh_version": "3.4.0"}
    output = nbformat.v4.new_output("display_data", data={STATIC_MIME: stale, "text/plain": "IntSlider()"})
    cell = nbformat.v4.new_code_cell("slider", id="old", outputs=[output])
    source = tmp_path / "old.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), source)
    assert main(["export", str(source)]) == 1
    err = capsys.readouterr().err
    assert "cell 0: its output was made with bokeh 3.4.0" in err and "export with --execute to re-run it" in err
    assert not (tmp_path / "old.html").exists()
