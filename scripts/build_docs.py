"""Build the tutorial docs: execute every notebook and render it to HTML (``make docs``).

Usage: ``.venv/bin/python scripts/build_docs.py [--out DIR] [NOTEBOOK ...]``

Each notebook in ``notebooks/`` (or each one given) is executed with nbclient
in a fresh ``python3`` kernel, with ``notebooks/`` as working directory, then
exported with nbconvert's ``lab`` HTML template to ``docs/_build/<name>.html``.
Links between notebooks (``02-scheduling.ipynb``) are rewritten to the HTML
pages, and Mermaid diagrams show their source where mermaid.js cannot load. A component displayed in a cell renders as its static snapshot (the
``text/html`` part of its mimebundle), so a reader without a kernel still sees
the content; the build checks that every kernelstate output has one.

The notebooks in the repository stay as they are (no outputs are written back).
Exits non-zero if a notebook fails or a live output has no static fallback.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "docs" / "_build"
KERNELSTATE_MIME = "application/vnd.kernelstate.doc+json"
CELL_TIMEOUT_S = 120
# The lab template hides a Mermaid diagram until mermaid.js (loaded from a CDN) has drawn it;
# offline, that is never, so show the diagram's source until then.
MERMAID_FALLBACK_CSS = """<style>
  .jp-Mermaid:not(.jp-RenderedMermaid) { display: block; }
  .jp-Mermaid:not(.jp-RenderedMermaid) > pre.mermaid {
    font-size: 85%; padding: 0.5em; overflow: auto; background: var(--jp-cell-editor-background, #f5f5f5);
  }
</style>
"""


def execute(path: Path) -> nbformat.NotebookNode:
    """Run every cell of ``path`` and return the notebook with its outputs."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", startup_timeout=60,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def missing_static_fallbacks(nb: nbformat.NotebookNode) -> list[str]:
    """Cells whose kernelstate output has no static ``text/html`` snapshot."""
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if KERNELSTATE_MIME in data and "ks-cell-static" not in data.get("text/html", ""):
                problems.append(f"cell {index}: a live component output without a static snapshot")
    return problems


def to_html(nb: nbformat.NotebookNode, local_stems: set[str]) -> str:
    """The lab-template HTML of ``nb``, with links to sibling notebooks pointing at their pages."""
    # nbconvert ranks a widget view first; a kernelstate output's widget needs a kernel, its text/html
    # holds the static snapshot, so HTML goes first (the other kinds keep nbconvert's order).
    defaults = HTMLExporter().default_config["NbConvertBase"]["display_data_priority"]
    priority = ["text/html", *(t for t in defaults if t != "text/html")]
    config = Config({"NbConvertBase": {"display_data_priority": priority}})
    body, _ = HTMLExporter(template_name="lab", config=config).from_notebook_node(nb)

    def relink(match: re.Match[str]) -> str:
        stem = match.group(2)
        return f'{match.group(1)}{stem}.html' if stem in local_stems else match.group(0)

    body = re.sub(r'(href=")([\w.-]+)\.ipynb', relink, body)
    return body.replace("</body>", MERMAID_FALLBACK_CSS + "</body>", 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to build (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    stems = {p.stem for p in NOTEBOOKS.glob("*.ipynb")} | {p.stem for p in paths}
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        start = time.monotonic()
        try:
            nb = execute(path)
        except CellExecutionError as exc:
            print(f"FAILED {path.name}:\n{exc}", file=sys.stderr)
            failed += 1
            continue
        problems = missing_static_fallbacks(nb)
        for problem in problems:
            print(f"FAILED {path.name}: {problem}", file=sys.stderr)
        failed += bool(problems)
        target = args.out / f"{path.stem}.html"
        target.write_text(to_html(nb, stems), encoding="utf-8")
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}  "
              f"({time.monotonic() - start:.1f}s)")
    if failed:
        print(f"{failed} notebook(s) failed", file=sys.stderr)
        return 1
    print(f"built {len(paths)} page(s) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
