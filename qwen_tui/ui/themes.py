"""Themes as files: shipped ones (top-level `themes/`) and the user's (`<config dir>/themes/`).

    theme, problem = parse_theme_file(path)        # a textual Theme, or None and why (FILE:LINE: ...)
    themes, problems = load_theme_files(dirs)      # later folders override earlier ones by name
    ThemesMixin                                    # QwenApp: register, apply [ui] theme, hot reload

A file is TOML: `name`, `dark`, the Textual colours (`primary` required) and an optional
`[variables]` table of Textual CSS variables. Hot reload: watchfiles tells us within ~0.1 s
that a file changed; a good edit re-registers the theme and, if it is the one on screen,
re-applies it; a broken edit keeps what is on screen and says what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from qwen_tui.file_watch import FolderWatcher, content_hashes
from qwen_tui.settings.loader import line_of, locate, tomllib
from qwen_tui.settings.locations import shipped_themes_dir, user_themes_dir

log = logging.getLogger("qwen_tui.themes")

COLOURS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost", "success",
           "warning", "error")
NUMBERS = ("luminosity_spread", "text_alpha")
KNOWN = {"name", "dark", "variables", *COLOURS, *NUMBERS}


def parse_theme_file(path: Path) -> tuple[Theme | None, str | None]:
    """(theme, None) or (None, "FILE:LINE: what is wrong")."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path}: cannot read it: {exc}"
    except tomllib.TOMLDecodeError as exc:
        return None, f"{path}: not valid TOML: {exc}"
    lines = locate(text)

    def bad(key: str, message: str) -> tuple[None, str]:
        return None, f"{path}:{line_of(lines, tuple(key.split('.')))}: {message}"

    for key in data:
        if key not in KNOWN:
            return bad(key, f"unknown key {key!r} (known: {', '.join(sorted(KNOWN))})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        return bad("name", "name must be a non-empty string")
    if "primary" not in data:
        return None, f"{path}:1: a theme needs at least `primary = \"#rrggbb\"`"
    colours = {}
    for key in COLOURS:
        if key in data:
            value = data[key]
            try:
                colours[key] = Color.parse(value).hex if isinstance(value, str) else None
            except ColorParseError:
                colours[key] = None
            if colours[key] is None:
                return bad(key, f"{key} = {value!r} is not a colour (try \"#7b6cf6\")")
            colours[key] = value
    if not isinstance(data.get("dark", True), bool):
        return bad("dark", "dark must be true or false")
    numbers = {}
    for key in NUMBERS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                return bad(key, f"{key} must be a number from 0 to 1")
            numbers[key] = float(value)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        return bad("variables", "[variables] must be a table of \"css-variable\" = \"value\" strings")
    theme = Theme(name=name.strip(), dark=data.get("dark", True), variables=dict(variables), **colours, **numbers)
    try:
        theme.to_color_system().generate()  # the checks Textual would otherwise do on screen
    except Exception as exc:  # noqa: BLE001 - anything it rejects is the file's fault
        return None, f"{path}: {exc}"
    return theme, None


def theme_dirs() -> list[Path]:
    """Shipped themes, then the user's (created, so that a file dropped there later is seen)."""
    user = user_themes_dir()
    try:
        user.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return [d for d in (shipped_themes_dir(), user) if d is not None]


def theme_files(folders: Iterable[Path]) -> list[Path]:
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*.toml"))]


def load_theme_files(folders: Iterable[Path]) -> tuple[dict[str, Theme], dict[Path, str], list[str]]:
    """({name: theme}, {file: name}, problems); a later folder's theme replaces an earlier one's."""
    themes, names, problems = {}, {}, []
    for path in theme_files(folders):
        theme, problem = parse_theme_file(path)
        if theme is None:
            problems.append(f"theme not loaded: {problem}")
        else:
            themes[theme.name] = theme
            names[path] = theme.name
    return themes, names, problems


class ThemeWatcher(FolderWatcher):
    """Calls `on_change(changed_paths)` from a daemon thread when theme files change.

    Files are compared by content hash, so an editor's save-by-rename is seen and an unchanged
    file (a touch) is not reported."""

    thread_name = "qwen-tui theme watcher"

    def __init__(self, folders: list[Path], on_change: Callable[[list[Path]], object]) -> None:
        super().__init__([f for f in folders if f.is_dir()], rescan_s=0.5, debounce_ms=150)
        self.on_change = on_change
        self._seen = content_hashes(theme_files(self.folders))

    def rescan(self) -> list[Path]:
        current = content_hashes(theme_files(self.folders))
        changed = [p for p, digest in current.items() if self._seen.get(p) != digest]
        changed += [p for p in self._seen if p not in current]
        self._seen = current
        if changed:
            try:
                self.on_change(changed)
            except Exception:  # noqa: BLE001 - a bad callback must not stop the watcher
                log.exception("theme on_change callback failed")
        return changed


class ThemesMixin:
    """QwenApp's themes: `setup_themes(name)` in __init__, `start_theme_watcher()` on mount."""

    theme_problems: list[str]
    _theme_files: dict[Path, str]
    _theme_watcher: ThemeWatcher | None = None

    def setup_themes(self, name: str, folders: list[Path] | None = None) -> list[str]:
        """Register every theme file and switch to `name`; returns problems (never raises)."""
        self.theme_folders = theme_dirs() if folders is None else folders
        themes, self._theme_files, problems = load_theme_files(self.theme_folders)
        for theme in themes.values():
            self.register_theme(theme)
        if name in self.available_themes:
            self.theme = name
        else:
            problems.append(f"[ui] theme {name!r} is not a known theme (try: {', '.join(sorted(themes))}, or any "
                            "from ctrl+p, then \"Theme\"); using the default")
        self.theme_problems = problems
        return problems

    def start_theme_watcher(self) -> None:
        try:
            self._theme_watcher = ThemeWatcher(self.theme_folders, self._themes_changed_in_thread).start()
        except Exception as exc:  # noqa: BLE001 - no hot reload is a nuisance, not a reason to stop
            self.notify(f"theme hot reload is off: {exc}", severity="warning")

    def stop_theme_watcher(self) -> None:
        if self._theme_watcher is not None:
            self._theme_watcher.stop()

    def _themes_changed_in_thread(self, changed: list[Path]) -> None:
        results = [(path, *parse_theme_file(path)) if path.exists() else (path, None, None) for path in changed]
        self.call_from_thread(self.apply_theme_changes, results)

    def apply_theme_changes(self, results: list[tuple[Path, Theme | None, str | None]]) -> None:
        """Register edited themes; re-apply the one on screen; report broken files (UI thread)."""
        for path, theme, problem in results:
            if problem is not None:
                self.theme_problems.append(problem)
                self.notify(f"{problem}\n(keeping the current theme)", title="Theme not applied", severity="error",
                            timeout=10)
                continue
            if theme is None:  # the file was deleted: its theme stays registered until restart
                continue
            self._theme_files[path] = theme.name
            self.register_theme(theme)
            if theme.name == self.theme:
                self.reapply_theme()
            self.notify(f"theme {theme.name} reloaded", timeout=3)

    def reapply_theme(self) -> None:
        """Re-apply the current theme after its definition changed (the reactive won't fire)."""
        self._watch_theme(self.theme)  # Textual's own apply step: classes, CSS variables, refresh
