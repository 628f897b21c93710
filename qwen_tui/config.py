"""The user's config file (TOML in the platformdirs config dir). For now: the [keymap] table.

A broken file never stops the app: problems are returned as messages to show, and defaults apply.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qwen_tui import paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_path() -> Path:
    return paths.config_dir() / "config.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Return ({binding_id: keys}, problems)."""
    path = path or config_path()
    if not path.exists():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: {exc}; using the default keys"]
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict):
        return {}, [f"{path}: [keymap] must be a table of binding-id = \"keys\""]
    good, problems = {}, []
    for binding_id, keys in keymap.items():
        if isinstance(keys, str) and keys.strip():
            good[binding_id] = keys.strip()
        else:
            problems.append(f"{path}: keymap.{binding_id} must be a non-empty string like \"ctrl+k\"")
    return good, problems


def load_table(name: str, path: Path | None = None) -> tuple[dict, list[str]]:
    """Return (the config file's `[name]` table, problems); dotted names reach nested tables.

    Features read their own section through this (e.g. `load_table("tools.shell")`), so a
    broken or missing file means defaults plus a message, never an exception.
    """
    path = path or config_path()
    if not path.exists():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: {exc}; using defaults"]
    table: object = data
    for part in name.split("."):
        if not isinstance(table, dict):
            return {}, [f"{path}: [{name}] must be a table; using defaults"]
        table = table.get(part, {})
    if not isinstance(table, dict):
        return {}, [f"{path}: [{name}] must be a table; using defaults"]
    return table, []
