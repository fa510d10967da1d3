"""The tutorials' asserts bite: run against a kernelstate with one named bug, the cells that claim otherwise fail.

Each case installs one breakage from ``broken_kernelstate`` in the kernel
before a tutorial's cells (a cell of the test, after the usual
DeprecationWarning one), runs the tutorial up to the last cell it names,
letting cells fail, and requires each named cell to fail with an
``AssertionError`` raised by the line that checks the claim (the snippet
given, looked for on the line IPython marks as failing). A cell that failed for another reason (a ``NameError`` after an
earlier failure, a timeout) does not count.

The same cells pass on the real kernelstate: ``test_notebooks`` runs every
tutorial in full.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from broken_kernelstate import BREAKAGES
from notebook_runner import NOTEBOOKS, execute

HERE = Path(__file__).resolve().parent

# breakage -> notebook -> {cell id: a snippet of the assert line that must fail}
CAUGHT_BY: dict[str, dict[str, dict[str, str]]] = {
    "threads-lose-session": {
        "01-sessions-and-state": {"01-threads-check": 'f"execute(thread): {mine}"'},
        "02-scheduling": {"02-thread-session-check": 'f"sees session {mine}"'},
    },
    "periodic-survives-destroy": {
        "01-sessions-and-state": {"01-expiry": "not heartbeat_a.running"},
    },
    "destroyed-hooks-skipped": {
        "01-sessions-and-state": {"01-expiry": "state_log.messages =="},
        "02-scheduling": {"02-hooks-check": '"destroyed"'},
    },
    "document-kept": {
        "01-sessions-and-state": {"01-expiry": "session_a.document is None"},
    },
    "models-built-per-page": {
        "01-sessions-and-state": {"01-page-request": "not peek_entry.host.built"},
    },
    "functions-called-once": {
        "01-sessions-and-state": {"01-isolation-check": '"No clicks yet."', "01-leak-check": "seen_safe =="},
    },
    "cache-without-lock": {
        "01-sessions-and-state": {"01-stations-check": "len(loads) == 1"},
    },
    "onload-runs-at-once": {
        "02-scheduling": {"02-onload-check": '"loaded in onload" not in'},
    },
    "reuse-always-renders": {
        "03-reuse-sessions": {"03-measure-check": "reuse_html < 0.05", "03-warm-check": "spin.reuse.hits == 1"},
    },
    "reuse-ignores-reads": {
        "03-reuse-sessions": {"03-safety-check": "no leak"},
    },
    "views-not-updated": {
        "04-jupyter": {"04-every-view-check": '"86.0 °F" in static_html(view)'},
    },
}
CASES = [(name, stem) for name, notebooks in CAUGHT_BY.items() for stem in notebooks]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MARKER = re.compile(r"^-+> ")  # IPython marks the line that raised with "---->"


def test_every_breakage_is_caught_somewhere() -> None:
    """No breakage is defined without a tutorial cell that must catch it."""
    assert sorted(CAUGHT_BY) == sorted(BREAKAGES)


@pytest.mark.parametrize(("breakage", "stem"), CASES, ids=[f"{b}-{s[:2]}" for b, s in CASES])
def test_tutorial_catches_the_bug(breakage: str, stem: str) -> None:
    """With the bug installed, each cell that claims the opposite fails on its assert."""
    expected = CAUGHT_BY[breakage][stem]
    path = NOTEBOOKS / f"{stem}.ipynb"
    order = [cell.id for cell in _cells(path)]
    last = max(expected, key=order.index)
    install = f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport broken_kernelstate\nbroken_kernelstate.apply({breakage!r})\n"
    nb = execute(path, [install], [], allow_errors=True, last_cell_id=last)
    failures = {cell.id: out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"}
    assert not any(cell_id.startswith("ks-test-") for cell_id in failures), failures
    for cell_id, snippet in expected.items():
        assert cell_id in failures, f"{stem}: cell {cell_id} passed with {breakage!r} installed"
        error = failures[cell_id]
        trace = _ANSI.sub("", "\n".join(error.traceback))
        failing_lines = [line for line in trace.splitlines() if _MARKER.match(line)]
        assert error.ename == "AssertionError" and any(snippet in line for line in failing_lines), (
            f"{stem}: cell {cell_id} failed, but not on the assert containing {snippet!r}:\n{trace[-2000:]}")


def _cells(path: Path) -> list[Any]:
    import nbformat

    return list(nbformat.read(path, as_version=4).cells)
