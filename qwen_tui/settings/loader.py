"""Read, check and merge the config: defaults < config file < QWEN_TUI_* variables < CLI flags.

Nothing here raises on bad input: a broken file, an unknown key or a bad value becomes one
problem line `FILE:LINE: [section] key: what is wrong; using DEFAULT`, and the default applies.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qwen_tui.settings.schema import BY_NAME, NAMED_KEYS, SECTIONS, Key, Section, env_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = re.compile(rf"\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*")
_PART = re.compile(_KEY_PART)


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(text))


def locate(text: str) -> dict[tuple[str, ...], int]:
    """Line numbers (1-based) of table headers and keys: ("tools", "shell", "timeout") -> 12.

    A line scanner, not a parser: it is only asked where something tomllib already read is."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = re.match(r"^\[\[?(.+?)\]\]?\s*(#.*)?$", stripped)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        match = _DOTTED.match(line)
        if match and line[match.end():].startswith("="):
            lines.setdefault(table + _split_key(match.group(1)), number)
    return lines


def line_of(lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> int:
    """The line of `path`, else of its closest enclosing table, else 1."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1


def read_file(path: Path) -> tuple[dict, dict[tuple[str, ...], int], list[str]]:
    """(data, line lookup, problems) of a config file; a missing file is empty, a broken one too."""
    if not path.exists():
        return {}, {}, []
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), locate(text), []
    except (OSError, UnicodeDecodeError) as exc:
        return {}, {}, [f"{path}: cannot read it ({exc}); using defaults"]
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = f":{where.group(1)}" if where else ""
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        return {}, {}, [f"{path}{line}: not valid TOML: {message}; using defaults"]


def describe(key: Key) -> str:
    if key.choices:
        return "one of " + ", ".join(repr(c) for c in key.choices)
    kind = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false",
            "list[str]": "a list of strings", "table[str]": "a table of strings"}[key.type]
    if key.min is not None and key.max is not None:
        return f"{kind} from {key.min:g} to {key.max:g}"
    if key.min is not None:
        return f"{kind} >= {key.min:g}"
    return kind


def check(key: Key, value: object) -> tuple[bool, object]:
    """(ok, value converted to the key's type)."""
    t = key.type
    if t == "str":
        ok = isinstance(value, str)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # table[str]
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if ok and key.choices and value not in key.choices:
        ok = False
    if ok and t in ("int", "float"):
        ok = (key.min is None or value >= key.min) and (key.max is None or value <= key.max)
    return ok, value


def parse_env(key: Key, text: str) -> tuple[bool, object]:
    """A QWEN_TUI_* value as the key's type: 'true'/'1'/'on', '8192', 'a,b', TOML arrays."""
    text = text.strip()
    if key.type == "str":
        return check(key, text)
    if key.type == "bool":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True, True
        if lowered in ("0", "false", "no", "off"):
            return True, False
        return False, text
    if key.type == "list[str]" and not text.startswith("["):
        return True, [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return False, text
    return check(key, value)


def _fmt(value: object) -> str:
    return "true" if value is True else "false" if value is False else repr(value)


@dataclass
class Settings:
    """The effective config: `value("model", "ctx")`, where each came from, and what was wrong."""

    path: Path
    values: dict[str, dict[str, object]] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # "file" | "$QWEN_TUI_..." | "--flag"
    keymap: dict[str, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)  # the file as read (named and open sections live here)
    problems: list[str] = field(default_factory=list)

    def value(self, section: str, key: str) -> object:
        return self.values[section][key]

    def source(self, section: str, key: str) -> str:
        return self.sources.get((section, key), "default")

    def set(self, section: str, key: str, value: object, source: str) -> None:
        self.values[section][key] = value
        self.sources[(section, key)] = source


def _check_keys(keys: tuple[Key, ...], table: dict, where: str, path: tuple[str, ...], at, problems: list[str],
                skip=()) -> dict[str, object]:
    good = {}
    known = {k.name: k for k in keys}
    for name, value in table.items():
        key = known.get(name)
        if name in skip:
            continue
        if key is None:
            close = ", ".join(known) or "none"
            problems.append(f"{at(path + (name,))}: [{where}] unknown key {name!r} (known: {close}); ignored")
            continue
        ok, converted = check(key, value)
        if ok:
            good[name] = converted
        else:
            problems.append(f"{at(path + (name,))}: [{where}] {name} must be {describe(key)}, not {_fmt(value)}; "
                            f"using {_fmt(key.default) if key.default is not None else 'the default'}")
    return good


def validate(data: dict, lines: Mapping[tuple[str, ...], int], path: Path) -> tuple[dict[str, dict], dict, list[str]]:
    """(good values per fixed section, good keymap, problems) of a parsed file."""
    problems: list[str] = []

    def at(key_path: tuple[str, ...]) -> str:
        return f"{path}:{line_of(lines, key_path)}"

    prefixes = {tuple(s.name.split("."))[:n] for s in SECTIONS for n in range(1, len(s.name.split(".")) + 1)}
    good: dict[str, dict] = {}
    keymap: dict[str, str] = {}

    def walk(table: dict, key_path: tuple[str, ...]) -> None:
        name = ".".join(key_path)
        section = BY_NAME.get(name)
        children = {k for k in table if key_path + (k,) in prefixes}
        if section is not None and section.named:
            for entry, body in table.items():
                where = f"{name}.{entry}"
                if not isinstance(body, dict):
                    problems.append(f"{at(key_path + (entry,))}: [{where}] must be a table; ignored")
                    continue
                _check_keys(NAMED_KEYS[name], body, where, key_path + (entry,), at, problems)
        elif section is not None and section.any_key is not None:
            for key, value in table.items():
                ok, converted = check(section.any_key, value)
                if ok and converted.strip():
                    keymap[key] = converted.strip()
                else:
                    problems.append(f"{at(key_path + (key,))}: [{name}] {key} must be keys like \"ctrl+k\"; ignored")
        elif section is not None:
            good[name] = _check_keys(section.keys, table, name, key_path, at, problems, skip=children)
        else:
            for key in table:
                if key not in children:
                    known = sorted({p[len(key_path)] for p in prefixes if len(p) > len(key_path) and p[:len(key_path)] == key_path})
                    label = f"[{name}] unknown key" if name else "unknown section"
                    problems.append(f"{at(key_path + (key,))}: {label} {key!r} (known: {', '.join(known)}); ignored")
        for child in sorted(children):
            body = table[child]
            if isinstance(body, dict):
                walk(body, key_path + (child,))
            else:
                problems.append(f"{at(key_path + (child,))}: [{'.'.join(key_path + (child,))}] must be a table; ignored")

    walk(data, ())

    def line(problem: str) -> int:
        found = re.search(r":(\d+): ", problem)
        return int(found.group(1)) if found else 0

    return good, keymap, sorted(problems, key=line)


def env_overrides(environ: Mapping[str, str] | None = None) -> tuple[dict[tuple[str, str], tuple[str, object]], list[str]]:
    """{(section, key): (variable name, value)} from QWEN_TUI_* variables, and problems."""
    environ = os.environ if environ is None else environ
    found, problems = {}, []
    for name, (section, key) in env_keys().items():
        if name not in environ:
            continue
        ok, value = parse_env(key, environ[name])
        if ok:
            found[(section.name, key.name)] = (name, value)
        else:
            problems.append(f"${name}: must be {describe(key)}, not {environ[name]!r}; ignored")
    return found, problems


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the config file, then QWEN_TUI_* variables. Flags: `apply_flags`."""
    if path is None:
        from qwen_tui.config import config_path

        path = config_path()
    data, lines, problems = read_file(path)
    good, keymap, more = validate(data, lines, path)
    settings = Settings(path=path, keymap=keymap, raw=data, problems=problems + more)
    for section in SECTIONS:
        settings.values[section.name] = {k.name: k.default for k in section.keys}
        for key, value in good.get(section.name, {}).items():
            settings.set(section.name, key, value, "file")
    overrides, more = env_overrides(environ)
    settings.problems += more
    for (section, key), (name, value) in overrides.items():
        settings.set(section, key, value, f"${name}")
    return settings


def env_table(name: str, environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The QWEN_TUI_* overrides of section `name` (for `load_table`)."""
    return {key: value for (section, key), (_, value) in env_overrides(environ)[0].items() if section == name}


def flag_keys() -> list[tuple[Section, Key]]:
    return [(s, k) for s in SECTIONS for k in s.keys if k.dest]
