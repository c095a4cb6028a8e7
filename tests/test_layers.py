"""The house's floors, read from the source with ast: what may import what, and how large a
module or a function may grow.

Floors, bottom to top: journal and ufs (0), engine (1), fuse and recovery (2), cli (3). A module
may import its own package and the floors below it, never one beside or above it. Every import
statement counts: those under ``if TYPE_CHECKING:`` and inside functions too, since a circle or
an upward reach that only the type checker or a late import sees is still one. Beside each
other on one floor (journal and ufs; fuse and recovery) packages do not import each other today,
and must not start: each stands on the floors below alone.

A private name (one leading underscore) belongs to the module that defines it: no
``from m import _x``, and no ``obj._x`` unless obj is self, cls or super(), or this module
defines ``_x`` itself (then it is the module's own, e.g. a helper class reaching its partner).
Names that only look private because the standard library spells them so (namedtuple's
``_replace``/``_asdict``/``_fields``/``_field_defaults``/``_make``, ``os._exit``,
``sys._getframe``) are public API.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Floor of each runtime package; the key is the top-level package name.
FLOORS = {"journal": 0, "ufs": 0, "engine": 1, "fuse": 2, "recovery": 2, "cli": 3}
PACKAGES = tuple(FLOORS)

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: Functions allowed over MAX_FUNCTION_LINES: declarative tables only, each with its reason.
#: Keys are "module:qualified.name".
LONG_FUNCTION_ALLOWED: dict[str, str] = {}

#: Private-looking names that are public API of the standard library (namedtuple, os, sys).
PUBLIC_UNDERSCORE_NAMES = frozenset(
    {"_replace", "_asdict", "_fields", "_field_defaults", "_make", "_exit", "_getframe"}
)


@dataclass
class Module:
    name: str  # dotted, e.g. "engine.cache.fetch"
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int
    imports: list[tuple[str, int]] = field(default_factory=list)  # (target module, line)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _load_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            name, is_package = _module_name(path)
            tree = ast.parse(source, filename=str(path))
            modules[name] = Module(name, path, is_package, tree, len(source.splitlines()))
    for module in modules.values():
        module.imports = list(_imports_of(module, modules))
    return modules


def _resolve_relative(module: Module, level: int, target: str | None) -> str:
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports_of(module: Module, modules: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every module that `module` imports, by any import statement anywhere in it.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``.
    Imports of modules outside the scanned packages are yielded as written (e.g. "tests.x").
    """
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(module, node.level, node.module)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def _top(name: str) -> str:
    return name.split(".", 1)[0]


MODULES = _load_modules()


def _graph() -> dict[str, set[str]]:
    """Edges between the scanned modules (imports of anything else are left out)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module in MODULES.values():
        for target, _line in module.imports:
            if target in MODULES and target != module.name:
                graph[module.name].add(target)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one member (or a
    self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_strongly_connected_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _strongly_connected(graph) == [["a", "b", "c"]]


def _parsed(name: str, source: str, *, is_package: bool = False) -> Module:
    return Module(name, ROOT / "x.py", is_package, ast.parse(source), 0)


def test_imports_are_resolved() -> None:
    module = _parsed(
        "engine.cache.fetch",
        "from . import tiers\nfrom ..errors import X\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import fuse.daemon\n"
        "def f():\n    from cli.main import main\n",
    )
    assert [t for t, _ in _imports_of(module, MODULES)] == [
        "engine.cache.tiers", "engine.errors", "typing", "fuse.daemon", "cli.main",
    ]  # fmt: skip


def test_private_uses_are_found() -> None:
    module = _parsed(
        "cli.x",
        "import os\nfrom journal.writer import _helper\nfrom m import public\n"
        "class A:\n    def f(self, other):\n"
        "        self._own(); super()._base(); other._mine; os._exit(1); t._replace()\n"
        "        other._theirs; public._hidden\n"
        "    def _mine(self): ...\n",
    )
    assert sorted(use for _, use in _private_uses(module)) == [
        "from journal.writer import _helper", "other._theirs", "public._hidden",
    ]  # fmt: skip


def test_no_import_cycles() -> None:
    cycles = _strongly_connected(_graph())
    assert not cycles, "import circles:\n" + "\n".join(
        f"  {len(members)} modules: " + ", ".join(members) for members in cycles
    )


def test_no_upward_or_sideways_imports() -> None:
    offenders = []
    for module in MODULES.values():
        own = _top(module.name)
        for target, line in sorted(set(module.imports)):
            other = _top(target)
            if other == own or other not in FLOORS:
                continue
            if FLOORS[other] >= FLOORS[own]:
                offenders.append(
                    f"  {module.path.relative_to(ROOT)}:{line} ({own}, floor {FLOORS[own]}) "
                    f"imports {target} ({other}, floor {FLOORS[other]})"
                )
    assert not offenders, "imports that reach up or sideways:\n" + "\n".join(offenders)


def test_no_runtime_module_imports_tests() -> None:
    offenders = [
        f"  {module.path.relative_to(ROOT)}:{line} imports {target}"
        for module in MODULES.values()
        for target, line in sorted(set(module.imports))
        if _top(target) in {"tests", "conftest"}
    ]
    assert not offenders, "runtime modules importing test code:\n" + "\n".join(offenders)


def _is_private(name: str) -> bool:
    if name.startswith("__") or name in PUBLIC_UNDERSCORE_NAMES:
        return False
    return name.startswith("_")


def _defined_here(tree: ast.Module) -> set[str]:
    """Private names this module defines: functions, classes, assigned names and attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
    return {name for name in names if _is_private(name)}


def _private_uses(module: Module) -> Iterator[tuple[int, str]]:
    """Uses of another module's private names: ``from m import _x``, and ``obj._x`` (an imported
    module's or any object's) where obj is not self, cls or super() and this module does not
    define ``_x`` itself."""
    here = _defined_here(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _is_private(alias.name):
                    yield node.lineno, f"from {node.module or '.'} import {alias.name}"
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super":
                continue
            if node.attr not in here:
                yield node.lineno, ast.unparse(node)


def test_no_cross_module_private_names() -> None:
    offenders = [
        f"  {module.path.relative_to(ROOT)}:{line} {use}"
        for module in MODULES.values()
        for line, use in sorted(set(_private_uses(module)))
    ]
    assert not offenders, "uses of another module's private names:\n" + "\n".join(offenders)


def test_no_module_over_limit() -> None:
    offenders = [
        f"  {module.path.relative_to(ROOT)}: {module.lines} lines"
        for module in MODULES.values()
        if module.lines > MAX_MODULE_LINES
    ]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from _functions(child, name + ".")
        else:
            yield from _functions(child, prefix)


def _span(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])  # type: ignore[attr-defined]
    return node.end_lineno - first + 1  # type: ignore[attr-defined]


def test_no_function_over_limit() -> None:
    offenders = []
    for module in MODULES.values():
        for name, node in _functions(module.tree):
            key = f"{module.name}:{name}"
            if _span(node) > MAX_FUNCTION_LINES and key not in LONG_FUNCTION_ALLOWED:
                offenders.append(f"  {module.path.relative_to(ROOT)}:{name}: {_span(node)} lines")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_long_function_allow_list_is_current() -> None:
    present = {
        f"{module.name}:{name}"
        for module in MODULES.values()
        for name, _node in _functions(module.tree)
    }
    stale = sorted(set(LONG_FUNCTION_ALLOWED) - present)
    assert not stale, f"allow-listed functions that no longer exist: {stale}"


def test_test_modules_have_unique_names() -> None:
    # tests/ is not a package tree pytest imports by path: two test files with one basename
    # stop the whole run at collection.
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    clashes = [paths for paths in seen.values() if len(paths) > 1]
    assert not clashes, f"test modules sharing a name: {clashes}"
