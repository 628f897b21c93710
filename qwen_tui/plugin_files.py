"""Where plugins are found and how one plugin file is loaded (for `PluginHost`, plugins.py).

Each file runs as its own fresh module (a unique name, no bytecode cache) so that an edited
file is always seen on reload and two files with the same name never share a module.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import traceback
from pathlib import Path
from types import ModuleType

import qwen_tui
from qwen_tui import paths

ENTRY_POINT_GROUP = "qwen_tui"
_counter = itertools.count(1)  # makes every loaded module's name unique


def builtin_plugins_dir() -> Path:
    return Path(qwen_tui.__file__).resolve().parent.parent / "plugins"


def user_plugins_dir() -> Path:
    return paths.config_dir() / "plugins"


def disabled_from_config() -> set[str]:
    """Plugin names in config.toml's ``[plugins] disabled`` (a broken file disables nothing)."""
    try:
        from qwen_tui.config import config_path, tomllib

        data = tomllib.loads(config_path().read_text(encoding="utf-8"))
        names = data.get("plugins", {}).get("disabled", [])
        return {n for n in names if isinstance(n, str)}
    except Exception:  # noqa: BLE001 - missing or broken config: nothing disabled
        return set()


def plugin_files(folder: Path) -> list[Path]:
    """The plugin files in `folder`, sorted; names starting with `_` or `.` are skipped."""
    if not folder.is_dir():
        return []
    return sorted(p.resolve() for p in folder.glob("*.py") if not p.name.startswith(("_", ".")))


def describe_error(exc: BaseException, path: Path | None) -> str:
    """One line naming the error and, when it is in the plugin's own file, the line."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f"line {exc.lineno}: "
    elif path is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
        if frames:
            where = f"line {frames[-1].lineno}: "
    return f"{where}{type(exc).__name__}: {exc}" if str(exc) else f"{where}{type(exc).__name__}"


def load_module_from_file(path: Path, source: str) -> ModuleType:
    """Execute `path` as a fresh module with a unique name (no bytecode cache)."""
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    modname = f"_qwen_tui_plugin_{source.replace(' ', '_')}_{stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module
