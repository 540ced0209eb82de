"""The package's layers, checked: a stage imports only the stages before it, ``stats`` and the
store; pure computation imports nothing of ours; nothing forms a circle; the store and its
migrations import no face.

The order, bottom up (see DESIGN.md): ``errors`` and ``core``; ``stats``; ``store``; the
stages ``collect`` → ``monitor`` → ``retrain`` → ``deploy``, with ``archive`` (exports and
retention) beside ``retrain`` on top of ``monitor``; and the faces on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import feedback_loop

PACKAGE = Path(feedback_loop.__file__).parent
NAME = "feedback_loop"

# What each layer may import (besides itself). Faces may import anything below them.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "stats": set(),
    "store": {"errors", "core"},
    "collect": {"errors", "core", "stats", "store"},
    "monitor": {"errors", "core", "stats", "store", "collect"},
    "retrain": {"errors", "core", "stats", "store", "collect", "monitor"},
    "deploy": {"errors", "core", "stats", "store", "collect", "monitor", "retrain"},
    # exports and retention: read the log, keep the summaries monitoring reads
    "archive": {"errors", "core", "stats", "store", "collect", "monitor"},
}
FACES = {"server", "dashboard", "cli", "client"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, name: str | None = None) -> str:
    """The module an import names: ``from a import b`` names ``a.b`` when that is a module."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def _imports(path: Path) -> set[str]:
    """Every module of ours a file imports, anywhere in it (at the top, in a function, or
    for type checking only: a circle of annotations is still a circle for a reader)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == NAME)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == NAME
        ):
            found.update(_resolve(node.module, a.name) for a in node.names)
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_walk_sees_every_layer() -> None:
    layers = {_layer(m) for m in MODULES}
    assert set(ALLOWED) | FACES <= layers


def test_each_layer_imports_only_the_layers_below_it() -> None:
    offending = {
        module: sorted(bad)
        for module, imported in GRAPH.items()
        if (layer := _layer(module)) in ALLOWED
        and (
            bad := {
                m for m in imported if _layer(m) not in (ALLOWED[layer] | {layer}) and m != NAME
            }
        )
    }
    assert offending == {}


def test_pure_computation_imports_nothing_of_ours() -> None:
    for module, imported in GRAPH.items():
        if _layer(module) == "stats":
            assert all(_layer(m) == "stats" for m in imported), (module, imported)


def test_the_store_and_its_migrations_import_no_face() -> None:
    files = [m for m in MODULES if _layer(m) == "store"]
    assert any(".migrations." in m for m in files)  # the walk does reach the migrations
    assert {m: i for m in files if (i := {x for x in GRAPH[m] if _layer(x) in FACES})} == {}


def test_no_module_imports_itself_back() -> None:
    """No import circle, of any length (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in GRAPH:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    # a package's __init__ re-exporting its own modules is not a circle between concepts
    circles = [c for c in circles if not _package_and_members(c)]
    assert circles == []


def _package_and_members(component: list[str]) -> bool:
    packages = [m for m in component if MODULES[m].name == "__init__.py"]
    return len(packages) == 1 and all(m.startswith(packages[0]) for m in component)
