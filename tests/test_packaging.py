"""What `pip install .` carries: every package of the source tree (the list in pyproject is explicit)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_installed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "ganime").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert "ganime.shipped" in listed  # the trained weights


def test_the_declared_licence_is_in_the_tree() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "Apache-2.0" and "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole licence, not a pointer to it
    # Every weight file that ships says under which licence (weights/README.md, "Licences").
    licences = (ROOT / "weights" / "README.md").read_text().split("## Licences", 1)[1].split("\n## ", 1)[0]
    for w in (ROOT / "weights").glob("*.safetensors"):
        assert f"`{w.name}`" in licences, w.name
