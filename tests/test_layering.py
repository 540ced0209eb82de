"""Storage depends on no face: the store (tables, engine, migrations) must import nothing from
the server, the dashboard, the CLI or the client, so a database can be created and migrated
without them (a migration importing a face would also drag the face's dependencies in)."""

from __future__ import annotations

import ast
from pathlib import Path

import feedback_loop

PACKAGE = Path(feedback_loop.__file__).parent
FACES = (
    "feedback_loop.server",
    "feedback_loop.dashboard",
    "feedback_loop.cli",
    "feedback_loop.client",
)


def _imported(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_face(module: str) -> bool:
    return any(module == face or module.startswith(face + ".") for face in FACES)


def test_the_store_and_its_migrations_import_no_face() -> None:
    files = sorted((PACKAGE / "store").rglob("*.py"))
    assert any("migrations" in f.parts for f in files)  # the walk does reach the migrations
    offending = {
        str(f.relative_to(PACKAGE)): bad
        for f in files
        if (bad := [m for m in _imported(f) if _is_face(m)])
    }
    assert offending == {}


def test_the_secret_box_is_not_part_of_the_server() -> None:
    imported = _imported(PACKAGE / "secretbox.py")
    assert not [m for m in imported if _is_face(m)]
