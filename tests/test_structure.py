"""Rules of the source tree's shape (docs/ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[Path]:
    return [p for p in (ROOT / "ganime").rglob("*.py") if "__pycache__" not in p.parts]


def _private(name: str | None) -> bool:
    return bool(name) and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_a_private_name_of_another() -> None:
    """What modules share is public; what is private stays in its file."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                names = [(a.name, a.asname) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [(a.name.rsplit(".", 1)[-1], a.asname) for a in node.names]
            else:
                continue
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n, alias in names if _private(n) or _private(alias)
            ]
    assert not found, found


def test_no_class_is_a_set_of_methods_of_another() -> None:
    """Parts own their state: a class is not a mixin that works on another class's attributes."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and "Methods of" in (ast.get_docstring(node) or ""):
                found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not found, found


def test_the_rules_find_what_they_look_for() -> None:
    """The scans above would see a breach (they are not vacuous)."""
    tree = ast.parse("from .records import _Entry\nfrom ..motion import median as _median\n")
    names = [(a.name, a.asname) for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names]
    assert [(n, a) for n, a in names if _private(n) or _private(a)] == [("_Entry", None), ("median", "_median")]
    assert not _private("__version__")
    assert len(_modules()) > 50
