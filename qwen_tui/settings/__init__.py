"""Typed, documented configuration: defaults < config.toml < QWEN_TUI_* variables < CLI flags.

    settings = load_settings()                # defaults, file, environment; never raises
    apply_flags(settings, args, given)        # flags the user typed win, the rest fill `args`
    settings.value("model", "ctx"), settings.source("model", "ctx"), settings.problems

The schema (every section and key, with its default and meaning) is in `schema.py`;
docs/config.md and the file `qwen-tui config edit` creates are generated from it (`docs.py`).
"""

from __future__ import annotations

import argparse

from qwen_tui.settings.loader import Settings, load_settings
from qwen_tui.settings.schema import BY_NAME, SECTIONS, Key, Section

__all__ = ["Settings", "load_settings", "apply_flags", "given_dests", "SECTIONS", "BY_NAME", "Key", "Section"]


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The argparse dests the user actually typed (as opposed to left at their defaults)."""
    actions = parser._actions  # noqa: SLF001 - argparse has no public list of its actions
    saved = [(action, action.default) for action in actions]
    try:
        for action in actions:
            action.default = argparse.SUPPRESS
        namespace, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(namespace))


def apply_flags(settings: Settings, args: argparse.Namespace, given: set[str]) -> Settings:
    """Flags in `given` override the settings; settings fill the flags left unset in `args`."""
    for section in SECTIONS:
        for key in section.keys:
            if not key.dest or not hasattr(args, key.dest):
                continue
            if key.dest in given:
                value = getattr(args, key.dest)
                settings.set(section.name, key.name, (not value) if key.invert else value, key.flag or key.dest)
                continue
            value = settings.value(section.name, key.name)
            if value is not None:
                setattr(args, key.dest, (not value) if key.invert else value)
    return settings
