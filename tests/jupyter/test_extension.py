"""The extension is installed enabled, serves its assets, and cell outputs carry a static snapshot."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import bokeh
import nbformat
import pytest
from nbclient import NotebookClient

import kernelstate as ks
from kernelstate.jupyter.comm import kernel_documents
from kernelstate.jupyter.display import mimebundle
from kernelstate.jupyter.wire import MIME_TYPE, MessageAssembler, WireError, close_code, pack_frames, unpack_frames
from kernelstate.endpoint import CloseCode, message_frames, protocol

ROOT = Path(__file__).resolve().parents[2]


def test_server_extension_list_shows_it_enabled() -> None:
    """`jupyter server extension list` finds kernelstate enabled (config installed into etc/jupyter)."""
    result = subprocess.run([sys.executable, "-m", "jupyter_server.extension.serverextension", "list"],
                            capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    line = next((line for line in out.splitlines() if "kernelstate.jupyter" in line and "enabled" in line), None)
    assert line is not None, out
    assert "kernelstate.jupyter  OK" in out.replace("\x1b[32m", "").replace("\x1b[0m", "")


def test_wheel_ships_the_enabling_config_and_assets(tmp_path: Path) -> None:
    """The wheel installs jupyter_config/ into etc/jupyter and carries the cell runtime and static assets."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("kernelstate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    config = [n for n in names if n.endswith(".data/data/etc/jupyter/jupyter_server_config.d/kernelstate.json")]
    assert len(config) == 1, names
    enabled = json.loads(zipfile.ZipFile(wheel).read(config[0]))
    assert enabled == {"ServerApp": {"jpserver_extensions": {"kernelstate.jupyter": True}}}
    assert "kernelstate/jupyter/static/cell.js" in names and "kernelstate/static/js/kernelstate.js" in names


async def test_ping_and_assets_are_served(jp_fetch: Any, ks_ext: Any) -> None:
    """BokehJS (the server's own bokeh version) and kernelstate's assets are served locally, to signed-in users."""
    ping = json.loads((await jp_fetch("kernelstate", "api", "ping")).body)
    assert ping["kernelstate"] == ks.__version__
    bokehjs = await jp_fetch("kernelstate", "static", "js", "bokeh.min.js")
    assert bokehjs.code == 200 and bokeh.__version__.encode() in bokehjs.body
    for name in ("bokeh-widgets.min.js", "bokeh-gl.min.js", "bokeh-tables.min.js"):
        assert (await jp_fetch("kernelstate", "static", "js", name)).code == 200
    assert (await jp_fetch("kernelstate", "ks-static", "js", "kernelstate.js")).code == 200


def test_output_has_a_static_snapshot_and_a_safe_script() -> None:
    """The text/html output shows the content without JavaScript; values cannot close the script element."""
    slider = ks.widgets.IntSlider(name="speed <km/h>", start=0, end=10, value=7)
    # sanitize=False: the raw HTML must reach the snapshot, whose own escaping is what is tested here
    data, metadata = mimebundle(ks.Column(slider, ks.pane.Markdown("**bold** </script><script>alert(1)</script>",
                                                                    sanitize=False)))
    html = data["text/html"]
    snapshot = html.split('<div class="ks-cell-static">', 1)[1].split("<script>", 1)[0]
    assert "speed &lt;km/h&gt;:" in snapshot and "<b>7</b>" in snapshot and "<strong>bold</strong>" in snapshot
    # The snapshot's markup cannot run scripts (live BokehJS would not run them either) ...
    assert "<script" not in snapshot.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in snapshot
    # ... and nothing in the embedded data can end the runtime's <script> element early.
    assert html.count("<script>") == 1 and html.count("</script>") == 1 and html.endswith("</script>")
    reference = data[MIME_TYPE]
    assert reference["bokeh_version"] == bokeh.__version__ and reference["token"] and reference["doc_id"]
    assert data["text/plain"].startswith("Column(")
    assert kernel_documents().destroy(reference["doc_id"])  # this test process played the kernel


def test_nbclient_output_keeps_the_snapshot(tmp_path: Path) -> None:
    """Executed headless (nbclient, no frontend, no extension), a notebook's output still shows the content."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import kernelstate as ks\nks.Column(ks.widgets.IntSlider(name='n', value=4, end=9), ks.pane.Markdown('static *ok*'))")]
    NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    output = nb.cells[0].outputs[0]
    assert output.output_type == "execute_result"
    assert "n: <b>4</b>" in output.data["text/html"] and "static <em>ok</em>" in output.data["text/html"]
    assert MIME_TYPE in output.data


def test_wire_format_round_trip_and_validation() -> None:
    """Frames survive the comm format (binary as buffers); malformed input is refused with WireError."""
    frames = ["header", "meta", "content", '{"id": "b"}', b"\x00\x01binary"]
    data, buffers = pack_frames(frames)
    assert unpack_frames(json.loads(json.dumps(data)), [memoryview(b) for b in buffers]) == frames
    for bad in ({}, {"frames": "x"}, {"frames": [{"buffer": 3}]}, {"frames": [1]}):
        with pytest.raises(WireError):
            unpack_frames(bad, [])
    assembler = MessageAssembler()
    message = message_frames(protocol.create("PULL-DOC-REQ"))
    assert [assembler.feed(f) for f in message] == [None, None, message]
    for header in (b"binary", "not json", '{"msgtype": "X", "num_buffers": 99}', "[1]"):
        with pytest.raises(WireError):
            MessageAssembler().feed(header)
    assert close_code({"code": 4510, "reason": "kernel died"}, 4404, "d") == (4510, "kernel died")
    assert close_code({"code": 1000, "reason": "x"}, CloseCode.SESSION_EXPIRED, "d") == (CloseCode.SESSION_EXPIRED, "d")
