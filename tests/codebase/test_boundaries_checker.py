"""The AST boundary checker (boundaries.py) finds what a line-based reading misses, and nothing more.

It runs on the fixture package ``fixtures/fakepkg`` (read as text, never imported);
each fixture module's docstring names the lines the checker must flag.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from boundaries import Rules, Violation, check_package, resolve_relative

FAKEPKG = Path(__file__).resolve().parent / "fixtures" / "fakepkg"
RULES = Rules(package="fakepkg", edge=("web", "jupyter", "cli"), banned_internal=("jupyter",),
              banned_external=("jupyter_server", "ipykernel", "IPython", "tornado.web"))


@pytest.fixture(scope="module")
def found() -> dict[str, set[tuple[int, str, str]]]:
    by_module: dict[str, set[tuple[int, str, str]]] = {}
    for v in check_package(FAKEPKG, RULES):
        by_module.setdefault(v.module, set()).add((v.line, v.kind, v.target))
    return by_module


def test_lazy_imports_inside_functions_are_flagged(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """Imports inside functions, relative ones and importlib.import_module("...") with a literal name count."""
    assert found["fakepkg.lazy"] == {(9, "banned-import", "fakepkg.jupyter"),
                                     (14, "banned-import", "ipykernel"),
                                     (19, "banned-import", "fakepkg.jupyter")}


def test_multi_line_imports_are_flagged(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """A parenthesised import over several lines is one statement: its banned module and its private name are seen."""
    assert found["fakepkg.multiline"] == {(5, "banned-import", "tornado.web"),
                                          (10, "private-name", "fakepkg.session._registry")}


def test_type_checking_imports_are_flagged(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """Imports under ``if TYPE_CHECKING:`` count: the core must not even name Jupyter in its types."""
    assert found["fakepkg.typecheck"] == {(8, "banned-import", "IPython"), (9, "banned-import", "jupyter_server")}


def test_cross_module_private_attribute_access_is_flagged(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """``mod._x`` through a module alias, an absolute alias, an imported class, a dotted path, or an
    instance of an imported class (annotated parameter, assigned call result, the call itself) is flagged."""
    assert found["fakepkg.private_attr"] == {(19, "private-name", "fakepkg.session._registry"),
                                             (20, "private-name", "fakepkg.session._registry"),
                                             (21, "private-name", "fakepkg.session.Session._counter"),
                                             (22, "private-name", "fakepkg.session._registry"),
                                             (26, "private-name", "fakepkg.session.Session._id"),
                                             (27, "private-name", "fakepkg.session.Session._id"),
                                             (29, "private-name", "fakepkg.session.Session._id"),
                                             (30, "private-name", "fakepkg.session.Session._id")}


def test_edge_modules_may_import_jupyter_but_not_privates(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """The edge (here fakepkg.jupyter) imports Jupyter and tornado.web freely; the privacy rule still holds."""
    assert found["fakepkg.jupyter.display"] == {(7, "private-name", "fakepkg.session._registry")}


def test_clean_modules_are_not_flagged(found: dict[str, set[tuple[int, str, str]]]) -> None:
    """Own privates, dunders, private submodules, tornado's other modules and plain core imports are fine."""
    clean = {"fakepkg", "fakepkg._version", "fakepkg.session", "fakepkg.clean", "fakepkg.jupyter"}
    assert not clean & set(found), {m: found[m] for m in clean & set(found)}
    assert set(found) == {"fakepkg.lazy", "fakepkg.multiline", "fakepkg.typecheck", "fakepkg.private_attr",
                          "fakepkg.jupyter.display"}


def test_a_rule_can_bind_just_some_subpackages() -> None:
    """``only=`` narrows the bans to a layer: here fakepkg.jupyter may not import IPython."""
    layer = Rules(package="fakepkg", edge=(), banned_internal=(), banned_external=("IPython",), only=("jupyter",))
    assert [(v.module, v.line, v.target) for v in check_package(FAKEPKG, layer) if v.kind == "banned-import"] == \
        [("fakepkg.jupyter.display", 5, "IPython")]


def test_relative_imports_resolve_like_python() -> None:
    """``from ..x import y`` resolves against the module's package (a package __init__ is its own package)."""
    assert resolve_relative("ks.components.base", False, 2, "jupyter") == "ks.jupyter"
    assert resolve_relative("ks.components.base", False, 1, None) == "ks.components"
    assert resolve_relative("ks.components", True, 1, "base") == "ks.components.base"
    assert resolve_relative("ks", True, 1, "jupyter.magics") == "ks.jupyter.magics"
    with pytest.raises(ValueError, match="beyond the top-level package"):
        resolve_relative("ks.session", False, 3, "x")


def test_a_violation_names_module_line_kind_and_target() -> None:
    """The failure message a developer reads points at the line."""
    assert str(Violation("ks.session", 12, "private-name", "ks.scheduling._Log")) == \
        "ks.session:12: private-name ks.scheduling._Log"
