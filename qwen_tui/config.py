"""The user's config file (TOML in the platformdirs config dir), one table per feature.

A feature reads its own table with `load_table("tools.shell")`: the file's table with any
`QWEN_TUI_<SECTION>_<KEY>` environment variables laid over it. Every key is declared (type,
default, meaning) in `qwen_tui/settings/schema.py`, which also checks the whole file and
generates docs/config.md. A broken file never stops the app: problems are returned as
messages to show, and defaults apply.
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


def load_table(name: str, path: Path | None = None) -> tuple[dict, list[str]]:
    """Return (the config file's `[name]` table, problems); dotted names reach nested tables.

    Features read their own section through this (e.g. `load_table("tools.shell")`), so a
    broken or missing file means defaults plus a message, never an exception.
    """
    from qwen_tui.settings.loader import env_table

    path = path or config_path()
    env = env_table(name)
    if not path.exists():
        return env, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return env, [f"{path}: {exc}; using defaults"]
    table: object = data
    for part in name.split("."):
        if not isinstance(table, dict):
            return {}, [f"{path}: [{name}] must be a table; using defaults"]
        table = table.get(part, {})
    if not isinstance(table, dict):
        return env, [f"{path}: [{name}] must be a table; using defaults"]
    return {**table, **env}, []
