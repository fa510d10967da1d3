"""``kernelstate export NOTEBOOK --to html [--execute] [-o OUT]``: a notebook as one offline HTML page.

The page is nbconvert's ``lab`` HTML with every kernelstate output embedded
as :meth:`Component.save` embeds a component: the output's snapshot
(``application/vnd.kernelstate.static+json``, :mod:`kernelstate.standalone`)
rendered by BokehJS, plots included. BokehJS is inlined once, in the page's
head, and nothing is loaded from the network (nbconvert's CDN scripts --
require.js, MathJax, mermaid, the widget manager -- are left out, so LaTeX
shows as source). With ``--execute`` the notebook runs first in a fresh
kernel (nbclient), in the notebook's folder, so its outputs are current;
without it, the outputs saved in the file are used.

Python callbacks do not run in the page: widgets show and move, plots pan
and zoom, but nothing reaches a kernel.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bokeh
from bokeh.util.serialization import make_globally_unique_css_safe_id

from .errors import KernelstateError
from .standalone import STATIC_MIME, Snapshot, SnapshotError, bokehjs_inline, embed_script

FORMATS = ("html",)
_TEMPLATES = Path(__file__).resolve().parent / "template" / "nbconvert"


class ExportError(KernelstateError, RuntimeError):
    """A notebook that cannot be exported (unreadable, a failing cell under ``--execute``, nbconvert missing)."""


@dataclass(frozen=True)
class ExportResult:
    output: Path
    components: int       # kernelstate outputs embedded
    seconds: float        # execution and rendering


def export_notebook(path: str | Path, *, to: str = "html", execute: bool = False, output: str | Path | None = None,
                    timeout_s: float = 120.0, kernel_name: str | None = None) -> ExportResult:
    """Write ``path`` as a standalone page (``NOTEBOOK.html`` beside it unless ``output``); return what was done."""
    started = time.perf_counter()
    source = Path(path)
    if to not in FORMATS:
        raise ExportError(f"cannot export to {to!r}; the formats are: {', '.join(FORMATS)}")
    if source.suffix != ".ipynb" or not source.is_file():
        raise ExportError(f"{str(source)!r} is not a notebook file; pass an existing .ipynb file")
    nbformat, exporter_class = _nbconvert()
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a broken file
        raise ExportError(f"cannot read notebook {str(source)!r}: {exc}") from exc
    if execute:
        _execute(nb, source, timeout_s, kernel_name)
    count = embed_outputs(nb)
    exporter = exporter_class(template_name="kernelstate", extra_template_basedirs=[str(_TEMPLATES)])
    resources = {"metadata": {"name": source.stem},
                 "kernelstate_bokehjs": list(bokehjs_inline()) if count else []}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target = Path(output) if output is not None else source.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return ExportResult(target, count, time.perf_counter() - started)


def embed_outputs(nb: Any) -> int:
    """Replace each kernelstate output's data by its embedded snapshot (``text/html``); return how many."""
    count = 0
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data or STATIC_MIME not in data:
                continue
            try:
                snap = Snapshot.from_json(data[STATIC_MIME])
            except SnapshotError as exc:
                raise ExportError(f"cell {index}: {exc}") from exc
            if snap.bokeh_version != bokeh.__version__:
                raise ExportError(f"cell {index}: its output was made with bokeh {snap.bokeh_version}, but this "
                                  f"page would load BokehJS {bokeh.__version__}; export with --execute to re-run it")
            out["data"] = {"text/html": embed_html(snap), "text/plain": data.get("text/plain", "")}
            out.get("metadata", {}).clear()
            count += 1
    return count


def embed_html(snap: Snapshot) -> str:
    """A kernelstate output as HTML: one element per root and the script that renders them (BokehJS loaded)."""
    ids = [make_globally_unique_css_safe_id() for _ in snap.root_ids]
    elements = "".join(f'<div class="ks-root" id="{html.escape(eid)}"></div>' for eid in ids)
    return f'<div class="ks-export">{elements}</div>{embed_script(snap, ids)}'


def _execute(nb: Any, source: Path, timeout_s: float, kernel_name: str | None) -> None:
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as exc:
        raise ExportError("--execute needs nbclient: pip install 'kernelstate[jupyter]'") from exc
    client = NotebookClient(nb, timeout=timeout_s, kernel_name=kernel_name or nb.metadata.get("kernelspec", {})
                            .get("name", "python3"), resources={"metadata": {"path": str(source.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        raise ExportError(f"a cell of {str(source)!r} failed, nothing was written; fix it or export without "
                          f"--execute:\n{exc}") from exc


def _nbconvert() -> tuple[Any, Any]:
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError as exc:
        raise ExportError(f"kernelstate export needs nbconvert ({exc}): pip install 'kernelstate[jupyter]'") from exc
    return nbformat, HTMLExporter


def add_export_arguments(parser: Any) -> None:
    parser.add_argument("notebook", help="the .ipynb notebook to export")
    parser.add_argument("--to", choices=FORMATS, default="html", help="output format (default: html)")
    parser.add_argument("--execute", action="store_true", help="run the notebook in a fresh kernel first")
    parser.add_argument("-o", "--output", default=None, help="output file (default: NOTEBOOK.html beside it)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a cell may run with --execute")
    parser.add_argument("--kernel", default=None, help="kernel name for --execute (default: the notebook's)")


def run(ns: Any) -> int:
    """The ``kernelstate export`` command: 0 on success, 1 with the reason on stderr."""
    import sys

    try:
        result = export_notebook(ns.notebook, to=ns.to, execute=ns.execute, output=ns.output,
                                 timeout_s=ns.timeout, kernel_name=ns.kernel)
    except ExportError as exc:
        print(f"kernelstate export: error: {exc}", file=sys.stderr)
        return 1
    size_mb = result.output.stat().st_size / 1e6
    print(f"kernelstate export: wrote {result.output} ({size_mb:.1f} MB, {result.components} kernelstate "
          f"output(s), {result.seconds:.1f} s)", flush=True)
    return 0
