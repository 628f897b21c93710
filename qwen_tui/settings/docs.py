"""Text generated from the schema: docs/config.md, the commented default config file, TOML values.

    python -m qwen_tui.settings.docs > docs/config.md      # tests/test_config.py checks it is current
"""

from __future__ import annotations

import json
import textwrap

from qwen_tui.settings.schema import NAMED_KEYS, SECTIONS, Key, Section, env_name

PLACEHOLDER = {"str": '""', "int": "0", "float": "0.0", "bool": "false", "list[str]": "[]", "table[str]": "{}"}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML form for {value!r}")


def toml_key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() and name.isascii() else json.dumps(name)


def _default_text(key: Key) -> str:
    return "not set" if key.default is None else f"`{toml_value(key.default)}`"


def default_file_text() -> str:
    """A config file with every key commented out at its default, each with its meaning."""
    out = ["# qwen-tui configuration. Every key is optional: uncomment and change what you need.",
           "# Precedence: built-in defaults < this file < QWEN_TUI_* environment variables < command-line flags.",
           "# Reference: docs/config.md; check this file with `qwen-tui config show`.", ""]
    for section in SECTIONS:
        out.append(f"# {section.doc}")
        if section.named or section.any_key is not None:
            example = section.example or '[keymap]\n"chat.toggle_thinking" = "ctrl+g"'
            out += ["# for example:"] + [f"#   {line}" for line in example.splitlines()]
            out.append("")
            continue
        out.append(f"[{section.name}]")
        for key in section.keys:
            doc = key.doc + ("" if key.default is not None else " (not set by default)")
            out += textwrap.wrap(doc, 100, initial_indent="# ", subsequent_indent="# ")
            value = key.default if key.default is not None else key.example
            value = toml_value(value) if value is not None else PLACEHOLDER[key.type]
            out.append(f"# {key.name} = {value}")
        out.append("")
    return "\n".join(out)


def _row(section: Section | None, key: Key) -> str:
    env = f"`{env_name(section.name, key.name)}`" if section is not None and key.env else ""
    flag = f"`{key.flag}`" if key.flag else ""
    extra = f" One of: {', '.join(f'`{c}`' for c in key.choices)}." if key.choices else ""
    if key.min is not None:
        extra += f" At least {key.min:g}" + (f", at most {key.max:g}." if key.max is not None else ".")
    doc = (key.doc + extra).replace("|", "\\|")
    return f"| `{key.name}` | {key.type} | {_default_text(key)} | {env} | {flag} | {doc} |"


def _bindings_table() -> list[str]:
    from qwen_tui.ui.app import QwenApp
    from qwen_tui.ui.keymap import WIDGET_SCOPES, _bindings

    found: dict[str, list] = {}
    for scope, cls in [("app", QwenApp), *WIDGET_SCOPES.items()]:
        for binding in sorted(_bindings(cls), key=lambda b: b.id or ""):
            if binding.id and found.setdefault(binding.id, [scope, binding, []])[0] == scope:
                found[binding.id][2].append(binding.key)
    rows = [f"| `{bid}` | `{','.join(keys)}` | {b.description or b.action} | {scope} |"
            for bid, (scope, b, keys) in found.items()]
    return ["| id | default keys | does | where |", "|---|---|---|---|", *rows]


def render_markdown() -> str:
    out = [
        "# Configuration",
        "",
        "<!-- Generated from qwen_tui/settings/schema.py by `python -m qwen_tui.settings.docs > docs/config.md`;",
        "     tests/test_config.py fails when this file is out of date. -->",
        "",
        "qwen-tui reads one TOML file, `config.toml`, in the user config folder: `qwen-tui config path` prints",
        "where (`~/.config/qwen-tui/config.toml` on Linux, `~/Library/Application Support/qwen-tui/` on macOS,",
        "`%LOCALAPPDATA%\\qwen-tui\\` on Windows; `$QWEN_TUI_HOME/config/` when `QWEN_TUI_HOME` is set).",
        "",
        "- `qwen-tui config path` prints the file's path; `qwen-tui config show` prints every effective setting",
        "  and where it came from; `qwen-tui config edit` opens it in `$VISUAL` / `$EDITOR` (creating a",
        "  commented file with every key at its default first) and checks it when the editor closes;",
        "  `qwen-tui config check` exits 1 when the file has problems.",
        "- **Precedence**: built-in defaults < the config file < `QWEN_TUI_*` environment variables < flags.",
        "- **Environment variables** are `QWEN_TUI_<SECTION>_<KEY>` in capitals, dots as underscores",
        "  (`QWEN_TUI_MODEL_CTX=8192`, `QWEN_TUI_TOOLS_SHELL_MAX_TIMEOUT=900`). Booleans take",
        "  `1/0/true/false/yes/no/on/off`; lists take `a,b,c` or a TOML array.",
        "- **Problems never stop the app**: a file that is not valid TOML, an unknown section or key, or a",
        "  value of the wrong type is reported as `FILE:LINE: ...` (at startup, as a warning; with `-p`, on",
        "  stderr; and by `config show`), and the default is used instead.",
        "",
    ]
    for section in SECTIONS:
        out += [f"## [{section.name}]" + (" NAME" if section.named else ""), "", section.doc, ""]
        keys = NAMED_KEYS.get(section.name, section.keys)
        if section.named:
            out += ["```toml", section.example, "```", "", "Each named table takes:", ""]
        if section.any_key is not None:
            out += ["```toml", "[keymap]", '"chat.toggle_thinking" = "ctrl+g"', '"chat.new" = "ctrl+n,f5"', "```", "",
                    "Binding ids and their default keys:", "", *_bindings_table(), ""]
            continue
        out += ["| key | type | default | environment | flag | meaning |", "|---|---|---|---|---|---|"]
        out += [_row(None if section.named else section, key) for key in keys]
        out.append("")
    out += [
        "## Themes",
        "",
        "Shipped themes live in `themes/` (installed under `<prefix>/share/qwen-tui/themes`): `qwen` (the house",
        "theme), `midnight` (dark), `paper` (light) and `high-contrast` (exact xterm-256 colours, 7:1 contrast).",
        "Your own go in `<config dir>/themes/NAME.toml`; the same name as a shipped theme replaces it. Pick one",
        "with `[ui] theme`, `--theme`, `QWEN_TUI_UI_THEME`, or live from the command palette (ctrl+p, then",
        "\"Theme\"). Saving a theme file re-applies it within a second; a broken file keeps the current theme",
        "and a notification says what is wrong and on which line.",
        "",
        "```toml",
        'name = "mine"          # default: the file name',
        "dark = true",
        'primary = "#7B6CF6"    # required; also: secondary accent foreground background surface panel boost',
        '                       #           success warning error (any Textual colour)',
        "luminosity_spread = 0.15",
        "text_alpha = 0.95",
        "[variables]            # any Textual CSS variable, without the $",
        '"footer-key-foreground" = "#A79CFF"',
        "```",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
