"""The package's walls: llama.cpp only behind the engine, Textual only in the UI.

Read from the source (every import statement, also the ones inside functions), so a lazy
import in the wrong place is caught too, not only what a test happens to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import qwen_tui

PACKAGE = Path(qwen_tui.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules_importing(top: str) -> list[str]:
    return sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                  if top in imported_modules(path))


def test_only_the_engine_package_imports_llama_cpp():
    offenders = [m for m in modules_importing("llama_cpp") if not m.startswith("engine/")]
    assert offenders == []


def test_only_the_ui_package_imports_textual():
    offenders = [m for family in ("textual", "textual_serve", "textual_image") for m in modules_importing(family)
                 if not m.startswith("ui/")]
    assert offenders == []


def test_the_checks_see_real_imports():
    # If the scan were broken both tests above would pass vacuously.
    assert "engine/llama_backend.py" in modules_importing("llama_cpp")
    assert "ui/app.py" in modules_importing("textual")
