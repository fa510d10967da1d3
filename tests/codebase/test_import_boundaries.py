"""Import boundaries: the core never pulls in Jupyter or the web server, no module uses
another's privates, and importing kernelstate is cheap.

The checks read every module of ``kernelstate/`` with the AST checker in
``boundaries.py`` (lazy, ``TYPE_CHECKING`` and multi-line imports included; its
own tests are in ``test_boundaries_checker.py``). What is true today but should
not be is listed in ``ALLOWED``, one line of reason each; an entry that no
longer matches anything fails the test, so the list only shrinks.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from boundaries import KERNELSTATE_RULES, Rules, Violation, check_package, iter_modules

PACKAGE = Path(__file__).resolve().parents[2] / "kernelstate"
JUPYTER = ("kernelstate.jupyter", "jupyter_server", "ipykernel", "IPython", "jupyter_client", "comm")

#: Today's exceptions, keyed by (module, kind, target) so they survive line moves.
ALLOWED: dict[tuple[str, str, str], str] = {
    # Not a debt: IPython's `%load_ext kernelstate` calls load_ipython_extension on the package
    # itself (IPython's API), which then imports the magics; nothing else in the core reaches Jupyter.
    ("kernelstate", "banned-import", "kernelstate.jupyter"):
        "the %load_ext entry point lives on the package and imports kernelstate.jupyter.magics lazily",
    # Not a debt: jupyter_server finds an extension through this underscore-named hook on the
    # package and calls the ExtensionApp classmethod of the same name; the names are Jupyter's API.
    ("kernelstate.jupyter", "private-name",
     "kernelstate.jupyter.extension.KernelstateApp._load_jupyter_server_extension"):
        "jupyter_server's extension-loading API is named with an underscore",
}

#: Layers: only jupyter/ and testing/ import Jupyter; the shared web layer depends on neither host.
LAYERS = {
    "only jupyter/ and testing/ import Jupyter": Rules(
        package="kernelstate", edge=("jupyter", "testing"), banned_internal=("jupyter",),
        banned_external=("jupyter_server", "ipykernel", "IPython", "jupyter_client", "comm")),
    "web/ imports neither server/ nor jupyter/": Rules(
        package="kernelstate", edge=(), banned_internal=("server", "jupyter"), banned_external=(),
        only=("web",)),
}


def imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@functools.cache
def violations(rules: Rules) -> list[Violation]:
    return check_package(PACKAGE, rules)


def unexpected(found: list[Violation]) -> list[str]:
    return [str(v) for v in found if (v.module, v.kind, v.target) not in ALLOWED]


def test_checker_reads_every_module() -> None:
    """The checker parses every .py file of the package, subpackages included."""
    modules = dict(iter_modules(PACKAGE, "kernelstate"))
    assert set(modules.values()) == set(PACKAGE.rglob("*.py"))
    assert {"kernelstate", "kernelstate.session", "kernelstate.web.socket", "kernelstate.jupyter.relay",
            "kernelstate.cli"} <= set(modules)


def test_core_imports_no_jupyter_and_no_tornado_web() -> None:
    """No core module imports kernelstate.jupyter, jupyter_server, ipykernel, IPython or tornado.web, even lazily."""
    found = [v for v in violations(KERNELSTATE_RULES) if v.kind == "banned-import"]
    assert not unexpected(found), "\n".join(unexpected(found))


def test_no_module_uses_another_modules_private_names() -> None:
    """No module imports or reaches into another kernelstate module's underscore names."""
    found = [v for v in violations(KERNELSTATE_RULES) if v.kind == "private-name"]
    assert not unexpected(found), "\n".join(unexpected(found))


def test_allow_list_has_no_stale_entries() -> None:
    """Every allow-list entry still matches a violation (fixed ones must leave the list)."""
    found = {(v.module, v.kind, v.target) for v in violations(KERNELSTATE_RULES)}
    assert not set(ALLOWED) - found, sorted(set(ALLOWED) - found)


def test_layers() -> None:
    """Only jupyter/ and testing/ import Jupyter; web/ imports neither host package."""
    failures = {name: unexpected([v for v in violations(rules) if v.kind == "banned-import"])
                for name, rules in LAYERS.items()}
    assert not any(failures.values()), failures


@pytest.mark.parametrize(("group", "banned"), [
    ("core", (*JUPYTER, "tornado.web")),
    ("everything but jupyter/ and testing/", JUPYTER),
])
def test_no_banned_module_is_pulled_in_transitively(group: str, banned: tuple[str, ...]) -> None:
    """Importing the core (and then also web/, server/, cli) loads no banned module, not even through a third party."""
    modules = [name for name, _ in iter_modules(PACKAGE, "kernelstate")
               if (KERNELSTATE_RULES.is_core(name) if group == "core"
                   else not name.startswith(("kernelstate.jupyter", "kernelstate.testing")))]
    mods = imported_after("import " + ", ".join(modules))
    pulled = sorted(m for m in mods if any(m == b or m.startswith(b + ".") for b in banned))
    assert not pulled, f"importing {group} loads {pulled}"


def test_import_kernelstate_is_cheap() -> None:
    """`import kernelstate` (what %load_ext does first) loads neither Bokeh nor Tornado."""
    mods = imported_after("import kernelstate")
    assert "bokeh" not in mods and "tornado" not in mods


def test_all_is_complete() -> None:
    """Every name in kernelstate.__all__ resolves."""
    code = "import kernelstate as ks\nfor n in ks.__all__: getattr(ks, n)"
    subprocess.run([sys.executable, "-c", code], check=True)
