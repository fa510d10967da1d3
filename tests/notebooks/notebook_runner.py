"""Running a tutorial notebook in a real kernel, as the notebook tests do.

A notebook runs top to bottom under nbclient in a ``python3`` kernel (this
interpreter, the venv's) with ``notebooks/`` as working directory, with cells
of the test's own inserted before and after its cells. The first inserted cell
always makes a ``DeprecationWarning`` attributed to kernelstate's own code an
error, so a tutorial cannot pass while kernelstate relies on something its
dependencies are about to remove.

The kernel talks to the test over IPC sockets in a fresh temporary folder, not
TCP ports: with many kernels starting at once on a shared machine, a TCP port
picked as free can be taken before the kernel binds it ("Address already in
use"), and IPC needs no ports at all.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 60

# Like ``python -W error::DeprecationWarning``, scoped to kernelstate's modules (a warning is
# attributed to the module that triggered it: kernelstate's code, or its caller's line in it).
DEPRECATIONS_ARE_ERRORS = r"""
import warnings as _warnings
_warnings.filterwarnings("error", category=DeprecationWarning, module=r"kernelstate(\.|$)")
# Known, and being fixed by issue 14 (item 9): the reuse probe and --warm build tornado's
# HTTPServerRequest with arguments Tornado 6.6 deprecates. Delete this filter when that lands.
_warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kernelstate\.(reuse|server\.server)$",
                         message=r"The (method, uri, and version|start_line|host) arguments? (to|are)")
"""


def execute(path: Path, before: list[str], after: list[str], *, allow_errors: bool = False,
            last_cell_id: str | None = None) -> nbformat.NotebookNode:
    """Run ``path`` with ``before``/``after`` cells around its own; return it with outputs.

    ``last_cell_id`` stops the notebook after that cell (its later cells are left out).
    Raises ``CellExecutionError`` on the first failing cell unless ``allow_errors``.
    """
    nb = nbformat.read(path, as_version=4)
    if last_cell_id is not None:
        ids = [cell.id for cell in nb.cells]
        if last_cell_id not in ids:
            raise KeyError(f"{path.name} has no cell {last_cell_id!r}")
        nb.cells = nb.cells[: ids.index(last_cell_id) + 1]
    nb.cells[:0] = [new_code_cell(code, id=f"ks-test-before-{i}")
                    for i, code in enumerate([DEPRECATIONS_ARE_ERRORS, *before])]
    nb.cells.extend(new_code_cell(code, id=f"ks-test-after-{i}") for i, code in enumerate(after))
    with tempfile.TemporaryDirectory(prefix="ks-nb-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        client = NotebookClient(nb, config=ipc, timeout=CELL_TIMEOUT_S, kernel_name="python3", startup_timeout=60,
                                allow_errors=allow_errors, resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    return nb
