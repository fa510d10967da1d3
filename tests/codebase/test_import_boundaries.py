"""Import boundaries: the core never pulls in Jupyter; importing kernelstate is cheap."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kernelstate"


def imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


JUPYTER = {"jupyter_server", "ipykernel", "IPython", "jupyter_client", "comm"}


@pytest.mark.parametrize("module", [
    "kernelstate.context", "kernelstate.session", "kernelstate.scheduling", "kernelstate.runtime",
    "kernelstate.settings", "kernelstate.tasks", "kernelstate.cache", "kernelstate.sync",
    "kernelstate.components.layout", "kernelstate.components.widgets", "kernelstate.pane",
    "kernelstate.indicators", "kernelstate.template", "kernelstate.loading", "kernelstate.host",
])
def test_core_imports_no_jupyter(module: str) -> None:
    """Session, state, scheduling and components import no jupyter_server, ipykernel or IPython."""
    mods = imported_after(f"import {module}")
    assert not {m.split(".")[0] for m in mods} & JUPYTER, f"{module} imports Jupyter packages"


@pytest.mark.parametrize("module", ["kernelstate.context", "kernelstate.session", "kernelstate.scheduling", "kernelstate.runtime"])
def test_core_imports_no_tornado_web(module: str) -> None:
    """The runtime core doesn't depend on the web server."""
    assert "tornado.web" not in imported_after(f"import {module}")


def test_server_does_not_import_jupyter() -> None:
    """server/ never imports jupyter/."""
    mods = imported_after("import kernelstate.server.server, kernelstate.cli")
    assert not any(m.startswith("kernelstate.jupyter") for m in mods)
    assert not {m.split(".")[0] for m in mods} & JUPYTER


def test_import_kernelstate_is_cheap() -> None:
    """`import kernelstate` (what %load_ext does first) loads neither Bokeh nor Tornado."""
    mods = imported_after("import kernelstate")
    assert "bokeh" not in mods and "tornado" not in mods


def test_all_is_complete() -> None:
    """Every name in kernelstate.__all__ resolves."""
    code = "import kernelstate as ks\nfor n in ks.__all__: getattr(ks, n)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_cross_module_private_imports() -> None:
    """No module imports another module's underscore names (except the scheduler's log helper)."""
    allowed = {"_RateLimitedLog"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if s.startswith("from ") and " import " in s and not s.startswith("from __future__"):
                names = [n.strip(" ()").split(" as ")[0] for n in s.split(" import ", 1)[1].split(",")]
                bad = [n for n in names if n.startswith("_") and not n.startswith("__") and n not in allowed]
                if bad:
                    offenders.append(f"{path.relative_to(PACKAGE)}: {s}")
    assert not offenders, offenders
