"""The tutorial notebooks are the executable specification: each runs green under nbclient.

Every ``notebooks/*.ipynb`` is executed top to bottom in a real ``python3``
kernel (running this interpreter, the venv's: the first cell checks) with the
notebook folder as working directory (see ``notebook_runner``); any cell error
fails the test, with the cell's source and traceback in the message. Their
``assert`` cells check what the text claims (``test_spec_catches_bugs`` shows
that they fail on a kernelstate with the bug they name). A ``DeprecationWarning``
attributed to kernelstate's code is an error in every notebook.

Around the notebook's own cells, the test runs two cells of its own in the same
kernel: one before, recording the listening ports and threads the kernel
already has, and one after, checking that the notebook cleaned up: no
kernelstate server (``ks.serve`` or ``%serve``) still running, no new port
listening, no periodic callback or scheduled task still active, and no
non-daemon thread left. Idle workers of the two process-wide executors (the
kernel loop's default executor, which DNS lookups use, and kernelstate's thread
pool) are infrastructure rather than leaks: the check shuts those executors
down first, and an idle worker exits at once (the check allows 1 s),
whereas a thread still doing work would not.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell
from notebook_runner import PATHS, ROOT, execute

BEFORE = f"""\
import sys as _sys
assert _sys.executable == {sys.executable!r}, "the kernel must run on the test's interpreter (the venv)"
import threading as _threading
import psutil as _psutil
_ks_listening_before = {{c.laddr.port for c in _psutil.Process().net_connections("inet") if c.status == "LISTEN"}}
_ks_threads_before = {{t.ident for t in _threading.enumerate()}}
"""

AFTER = """\
import asyncio as _asyncio, sys as _sys, threading as _threading, time as _time
import psutil as _psutil

def _ks_check_clean_up():
    from kernelstate.session import kernel_session
    from kernelstate.server.server import running_servers
    from kernelstate.tasks import tasks
    problems = []
    if running_servers():
        problems.append(f"ks.serve servers still running: {running_servers()}")
    if "kernelstate.jupyter.kernel_server" in _sys.modules:
        served = _sys.modules["kernelstate.jupyter.kernel_server"].served()
        if served:
            problems.append(f"%serve servers still running on ports {[s.port for s in served]}")
    running = [cb for cb in kernel_session().scheduler.periodic if cb.running]
    if running:
        problems.append(f"periodic callbacks still running in the kernel: {running}")
    if tasks.names():
        problems.append(f"scheduled tasks not cancelled: {tasks.names()}")
    return problems

_ks_problems = _ks_check_clean_up()

from kernelstate.threads import thread_pool as _pool
_pool.resize(None)
await _asyncio.get_running_loop().shutdown_default_executor()
_deadline = _time.monotonic() + 1
while True:
    _left = [t for t in _threading.enumerate() if not t.daemon and t is not _threading.main_thread()
             and t.ident not in _ks_threads_before]
    if not _left or _time.monotonic() > _deadline:
        break
    await _asyncio.sleep(0.05)
if _left:
    _ks_problems.append(f"non-daemon threads left: {[t.name for t in _left]}")
_listening = {c.laddr.port for c in _psutil.Process().net_connections("inet") if c.status == "LISTEN"}
if _listening - _ks_listening_before:
    _ks_problems.append(f"ports left listening: {sorted(_listening - _ks_listening_before)}")
assert not _ks_problems, "the notebook did not clean up: " + "; ".join(_ks_problems)
"""


def _execute(path: Path, before: str, after: str) -> nbformat.NotebookNode:
    return execute(path, [before], [after])


def test_there_are_tutorials() -> None:
    """The suite is not vacuous: the index and the four tutorials are there."""
    stems = [p.stem for p in PATHS]
    assert "index" in stems and sum(1 for s in stems if s[:2].isdigit()) >= 4, stems


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_and_cleans_up(path: Path) -> None:
    """Every cell runs without error, and nothing the notebook started is left running."""
    start = time.monotonic()
    try:
        nb = _execute(path, BEFORE, AFTER)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    elapsed = time.monotonic() - start
    assert elapsed < 45, f"{path.name} took {elapsed:.1f}s; keep each notebook quick (all of them: under 150 s)"
    docs = _build_docs()
    assert docs.missing_static_fallbacks(nb) == []
    if path.stem == "index":
        html = docs.to_html(nb, {p.stem for p in PATHS})
        assert "ks-cell-static" in html, "the docs page must show the component's static snapshot"
        assert 'href="01-sessions-and-state.html"' in html, "links between notebooks must point at their pages"


def _build_docs() -> Any:
    """``scripts/build_docs.py`` as a module (``make docs`` runs it as a script)."""
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LEAK = (
    "import threading, kernelstate as ks\n"
    "server = ks.serve(ks.pane.Markdown('left running'), port=0, threaded=True)\n"
    "ticker = ks.state.add_periodic_callback(lambda: None, period=1000)\n"
    "ks.state.schedule_task('forgotten-task', lambda: None, period='1h')\n"
    # Alive until the interpreter shuts down, so the kernel still exits promptly.
    "threading.Thread(target=threading.main_thread().join, name='forgotten-worker').start()\n"
)


def test_clean_up_check_catches_leaks(tmp_path: Path) -> None:
    """The after-check is not vacuous: a notebook that leaves things running fails it."""
    leaky = tmp_path / "leaky.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[new_code_cell(LEAK, id="leak")]), leaky)
    with pytest.raises(CellExecutionError) as caught:
        _execute(leaky, BEFORE, AFTER)
    for text in ("ks.serve servers still running", "periodic callbacks still running",
                 "scheduled tasks not cancelled: ['forgotten-task']",
                 "non-daemon threads left: ['forgotten-worker']", "ports left listening"):
        assert text in str(caught.value), str(caught.value)


DEPRECATED_CALL = (
    "import warnings\n"
    "# A call from kernelstate's code to something deprecated, as a dependency would warn about it.\n"
    "exec('warnings.warn(\"going away in the next release\", DeprecationWarning)',\n"
    "     {'__name__': 'kernelstate._config', 'warnings': warnings})\n"
)
ELSEWHERE = "import warnings\nwarnings.warn('not kernelstate: just shown', DeprecationWarning)\n"


def test_deprecation_from_kernelstate_fails_the_notebook(tmp_path: Path) -> None:
    """A DeprecationWarning raised in kernelstate's code fails the cell; one from elsewhere does not."""
    notebook = tmp_path / "deprecated.ipynb"
    cells = [new_code_cell(ELSEWHERE, id="elsewhere"), new_code_cell(DEPRECATED_CALL, id="kernelstate")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    nb = execute(notebook, [], [], allow_errors=True)
    errors = {cell.id: out.ename for cell in nb.cells for out in cell.get("outputs", [])
              if out.output_type == "error"}
    assert errors == {"kernelstate": "DeprecationWarning"}
