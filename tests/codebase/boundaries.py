"""An AST checker for kernelstate's import boundaries and module privacy.

It parses every module of a package (nothing is imported, so a lazy import
inside a function, an import under ``if TYPE_CHECKING:``, a multi-line
``from x import (a, b)`` and ``importlib.import_module("x")`` with a literal
name are all seen) and reports two kinds of violation:

- ``banned-import``: a *core* module (one outside the package's edge
  subpackages and modules) imports a banned module: one of the package's own
  edge packages named in ``Rules.banned_internal`` (``kernelstate.jupyter``) or
  an external one in ``Rules.banned_external`` (``jupyter_server``,
  ``ipykernel``, ``IPython``, ``tornado.web``), or anything below them;
- ``private-name``: a module uses another module's underscore name, by
  importing it (``from .scheduling import _RateLimitedLog``) or by attribute
  access on a name bound to another module of the package or to something
  imported from one (``session._registry``, ``Session._counter`` after
  ``from .session import Session``), or to an instance of a class imported
  from one: a name assigned from calling it (``server = Server(...)``), a
  parameter annotated with it (``def f(server: Server)``) or the call itself
  (``Server(...)._stopped``). Other instances
  (``obj._x`` for an ``obj`` from anywhere else) are not tracked: the checker
  knows only what imports, calls of imported classes and annotations bind, and
  it does not follow scopes (a name counts as bound from its binding onwards).

Relative imports are resolved to absolute names first, so ``from ..jupyter
import display`` in ``kernelstate/components/base.py`` is
``kernelstate.jupyter.display``. Dunder names are public; a private
*submodule* (``from . import _version``) is the package's own business and
is allowed.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMPORT_FUNCTIONS = frozenset({"importlib.import_module", "import_module", "__import__"})


@dataclass(frozen=True)
class Rules:
    """What the checker enforces for one package.

    Attributes:
        package: the top-level package name (``kernelstate``).
        edge: subpackages and modules of the package that form the edge
            (relative names: ``"web"``, ``"cli"``); every other module is core.
        banned_internal: edge subpackages the core must not import (relative names).
        banned_external: other modules the core must not import (absolute names).
        only: if given, the rule binds just these subpackages (relative names)
            instead of everything outside ``edge``, e.g. ``only=("web",)``.
    """

    package: str
    edge: tuple[str, ...]
    banned_internal: tuple[str, ...]
    banned_external: tuple[str, ...]
    only: tuple[str, ...] = ()

    def is_core(self, module: str) -> bool:
        """True for the modules the import bans apply to."""
        if self.only:
            return any(_within(module, f"{self.package}.{name}") for name in self.only)
        return not any(_within(module, f"{self.package}.{name}") for name in self.edge)

    def banned(self, target: str) -> str | None:
        """The banned module ``target`` falls under, or None."""
        for name in (*(f"{self.package}.{n}" for n in self.banned_internal), *self.banned_external):
            if _within(target, name):
                return name
        return None


KERNELSTATE_RULES = Rules(
    package="kernelstate",
    edge=("web", "server", "jupyter", "testing", "cli", "auth"),
    banned_internal=("jupyter",),
    banned_external=("jupyter_server", "ipykernel", "IPython", "tornado.web"),
)


@dataclass(frozen=True, order=True)
class Violation:
    """One finding: ``module`` (line ``line``) uses ``target`` in a way of kind ``kind``."""

    module: str
    line: int
    kind: str      # "banned-import" or "private-name"
    target: str    # the banned module, or the private name's full dotted name

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.kind} {self.target}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def iter_modules(root: Path, package: str) -> Iterator[tuple[str, Path]]:
    """``(dotted module name, path)`` for every ``.py`` file of the package at ``root``."""
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join([package, *parts]), path


def resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a ``from {'.' * level}{name} import ...`` in ``module`` refers to."""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        if level - 1 >= len(base):
            raise ValueError(f"relative import beyond the top-level package in {module}: level {level}")
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


class _ModuleChecker(ast.NodeVisitor):
    """Collects the violations of one module; see the module docstring for the rules."""

    def __init__(self, module: str, is_package: bool, rules: Rules, known_modules: frozenset[str],
                 classes: frozenset[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.rules = rules
        self.known = known_modules
        self.classes = classes
        self.core = rules.is_core(module)
        # local name -> the absolute dotted name it is bound to, for names bound to the package's
        # other modules or to things imported from them.
        self.bound: dict[str, str] = {}
        # local name -> the full name of the package class (of another module) it is an instance of.
        self.instances: dict[str, str] = {}
        self.violations: set[Violation] = set()

    def _imported(self, target: str, line: int) -> None:
        banned = self.rules.banned(target)
        if self.core and banned is not None:
            self.violations.add(Violation(self.module, line, "banned-import", banned))

    def _foreign(self, target: str) -> bool:
        """True when ``target`` is another module of the package, or a name inside one."""
        if not _within(target, self.rules.package):
            return False
        return target != self.module and not (target.rsplit(".", 1)[0] == self.module and target not in self.known)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(alias.name, node.lineno)
            if _within(alias.name, self.rules.package):
                if alias.asname:
                    self.bound[alias.asname] = alias.name
                else:
                    self.bound[alias.name.split(".")[0]] = alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = (resolve_relative(self.module, self.is_package, node.level, node.module) if node.level
                  else node.module or "")
        if source == "__future__":
            return
        self._imported(source, node.lineno)
        for alias in node.names:
            if alias.name == "*":
                continue
            full = f"{source}.{alias.name}"
            self._imported(full, node.lineno)
            if not _within(source, self.rules.package):
                continue
            if _is_private(alias.name) and full not in self.known and source != self.module:
                self.violations.add(Violation(self.module, node.lineno, "private-name", full))
            if self._foreign(full):
                self.bound[alias.asname or alias.name] = full

    def _foreign_class(self, node: ast.expr | None) -> str | None:
        """The full name of the package class ``node`` names (``Server``, ``"Server"``, ``web.Server``), if foreign."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            dotted: str | None = node.value
        else:
            dotted = _dotted(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        if root not in self.bound:
            return None
        owner = self.bound[root] + (f".{rest}" if rest else "")
        return owner if owner in self.classes and self._foreign(owner) else None

    def _bind_instance(self, target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name) and isinstance(value, ast.Call):
            cls = self._foreign_class(value.func)
            if cls is not None:
                self.instances[target.id] = cls

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._bind_instance(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._bind_instance(node.target, node.value)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        cls = self._foreign_class(node.annotation)
        if cls is not None:
            self.instances[node.arg] = cls
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = _dotted(node.func)
        if func in IMPORT_FUNCTIONS and node.args and isinstance(node.args[0], ast.Constant):
            name = node.args[0].value
            if isinstance(name, str):
                anchor = node.args[1] if len(node.args) > 1 else None
                if name.startswith(".") and isinstance(anchor, ast.Name) and anchor.id == "__name__":
                    level = len(name) - len(name.lstrip("."))
                    name = resolve_relative(self.module, self.is_package, level, name.lstrip(".") or None)
                self._imported(name, node.lineno)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_private(node.attr) and isinstance(node.value, ast.Call):
            cls = self._foreign_class(node.value.func)   # Markdown(...)._to_model
            if cls is not None:
                self.violations.add(Violation(self.module, node.lineno, "private-name", f"{cls}.{node.attr}"))
        dotted = _dotted(node.value)
        if dotted is not None and _is_private(node.attr):
            root, _, rest = dotted.partition(".")
            if root in self.bound:
                owner = self.bound[root] + (f".{rest}" if rest else "")
                if self._foreign(owner):
                    self.violations.add(Violation(self.module, node.lineno, "private-name", f"{owner}.{node.attr}"))
            elif root in self.instances and not rest:
                self.violations.add(Violation(self.module, node.lineno, "private-name",
                                              f"{self.instances[root]}.{node.attr}"))
        self.generic_visit(node)


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def check_package(root: Path, rules: Rules) -> list[Violation]:
    """Every violation in the package whose directory is ``root`` (sorted)."""
    modules = list(iter_modules(root, rules.package))
    known = frozenset(name for name, _ in modules)
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for name, path in modules}
    classes = frozenset(f"{name}.{node.name}" for name, tree in trees.items()
                        for node in tree.body if isinstance(node, ast.ClassDef))
    found: set[Violation] = set()
    for name, path in modules:
        checker = _ModuleChecker(name, path.name == "__init__.py", rules, known, classes)
        checker.visit(trees[name])
        found |= checker.violations
    return sorted(found)
