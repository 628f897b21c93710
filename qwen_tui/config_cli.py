"""`qwen-tui config path|show|check|edit`: where the config file is, what is in effect, change it."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys

from qwen_tui.settings import SECTIONS, load_settings
from qwen_tui.settings.docs import default_file_text, toml_key, toml_value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-tui config", description="The config file (TOML): docs/config.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("path", help="print the config file's path (it may not exist yet)")
    sub.add_parser("show", help="print every effective setting and where it came from (file, environment, default)")
    sub.add_parser("check", help="report problems in the config file; exit 1 if there are any")
    sub.add_parser("edit", help="open the config file in $VISUAL / $EDITOR (creating a commented one first)")
    return parser


def show_text(settings) -> str:
    out = [f"# {settings.path}" + ("" if settings.path.exists() else " (does not exist: all defaults)"),
           "# defaults < config file < QWEN_TUI_* environment variables", ""]
    for section in SECTIONS:
        if section.named or section.any_key is not None:
            table = settings.keymap if section.any_key is not None else _raw(settings.raw, section.name)
            if not isinstance(table, dict) or not table:
                continue
            if section.any_key is not None:
                out.append(f"[{section.name}]")
                out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
            else:
                for name, body in table.items():
                    if isinstance(body, dict):
                        out.append(f"[{section.name}.{toml_key(name)}]")
                        out += [f"{toml_key(k)} = {_safe(v)}" for k, v in body.items()]
            out.append("")
            continue
        out.append(f"[{section.name}]")
        for key in section.keys:
            value = settings.value(section.name, key.name)
            source = settings.source(section.name, key.name)
            note = "" if source == "default" else f"  # from {'the config file' if source == 'file' else source}"
            out.append(f"# {key.name} is not set" if value is None else f"{key.name} = {toml_value(value)}{note}")
        out.append("")
    return "\n".join(out)


def _raw(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data


def _safe(value) -> str:
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


def _editor() -> list[str] | None:
    for var in ("VISUAL", "EDITOR"):
        if os.environ.get(var, "").strip():
            return shlex.split(os.environ[var])
    for name in ("nano", "vi", "notepad"):
        if shutil.which(name):
            return [name]
    return None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    path = settings.path
    if args.command == "path":
        print(path)
        return 0
    if args.command == "show":
        print(show_text(settings))
    if args.command == "edit":
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(default_file_text(), encoding="utf-8")
            print(f"created {path} (every key commented out at its default)", file=sys.stderr)
        editor = _editor()
        if editor is None:
            print(f"qwen-tui: error: set $VISUAL or $EDITOR to edit {path}", file=sys.stderr)
            return 2
        try:
            code = subprocess.call([*editor, str(path)])
        except OSError as exc:
            print(f"qwen-tui: error: cannot run the editor {editor[0]!r}: {exc}", file=sys.stderr)
            return 2
        if code != 0:
            print(f"qwen-tui: the editor exited with code {code}", file=sys.stderr)
        settings = load_settings()
    problems = list(settings.problems)
    if settings.keymap:
        from qwen_tui.ui.keymap import keymap_problems  # imports Textual: only when there is a keymap

        problems += keymap_problems(settings.keymap)
    for problem in problems:
        print(f"qwen-tui: warning: {problem}", file=sys.stderr)
    if args.command == "check":
        if not problems:
            print(f"{path}: no problems")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
