"""Recipes stay apart: no library module imports ``pixelrefer.recipes`` (only the CLI may), and the trainer
library builds no data (it imports nothing of the synthetic world)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pixelrefer"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _importers(prefix: str, where: Path) -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in where.rglob("*.py")
                  if any(n == prefix or n.startswith(prefix + ".") for n in _imports(p)))


def test_only_the_cli_imports_the_recipes():
    found = [p for p in _importers("pixelrefer.recipes", PACKAGE) if not p.startswith(("recipes/", "cli/"))]
    assert found == []
    assert "cli/train.py" in _importers("pixelrefer.recipes", PACKAGE)


def test_the_trainer_library_builds_no_data():
    assert _importers("pixelrefer.synth", PACKAGE / "train") == []
    assert _importers("pixelrefer.recipes", PACKAGE / "train") == []
