"""The config file: schema, validation with file:line, precedence (defaults < file < env < flags)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_tui import config
from qwen_tui.cli import build_parser
from qwen_tui.settings import SECTIONS, apply_flags, given_dests, load_settings
from qwen_tui.settings.docs import default_file_text, render_markdown
from qwen_tui.settings.loader import locate, tomllib
from qwen_tui.settings.schema import BY_NAME, NAMED_KEYS

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def resolve(path: Path, argv: list[str], environ: dict | None = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = apply_flags(load_settings(path, environ or {}), args, given_dests(parser, argv))
    return args, settings


def test_no_file_means_defaults_and_no_problems(tmp_path):
    settings = load_settings(tmp_path / "missing.toml", {})
    assert settings.problems == []
    assert settings.value("model", "max_tokens") == 4096 and settings.value("model", "ctx") is None
    assert settings.value("ui", "theme") == "textual-dark" and settings.source("ui", "theme") == "default"


def test_precedence_file_then_env_then_flag(tmp_path):
    path = write(tmp_path, "[model]\nctx = 1000\nmax_tokens = 77\n[tools]\nmax_steps = 3\nenabled = false\n"
                           "[ui]\ntheme = \"paper\"\n")
    args, settings = resolve(path, ["--demo"])
    assert (args.ctx, args.max_tokens, args.max_steps, args.no_tools) == (1000, 77, 3, True)
    assert settings.source("model", "ctx") == "file"

    env = {"QWEN_TUI_MODEL_CTX": "2000", "QWEN_TUI_UI_THEME": "midnight", "QWEN_TUI_TOOLS_ENABLED": "yes"}
    args, settings = resolve(path, ["--demo"], env)
    assert (args.ctx, args.max_tokens, args.no_tools) == (2000, 77, False)
    assert settings.value("ui", "theme") == "midnight" and settings.source("model", "ctx") == "$QWEN_TUI_MODEL_CTX"

    args, settings = resolve(path, ["--demo", "--ctx", "3000", "--theme", "paper", "--max-tokens", "4096",
                                    "--no-tools"], env)
    assert (args.ctx, args.max_tokens, args.no_tools) == (3000, 4096, True)  # 4096 typed = the argparse default
    assert settings.value("model", "ctx") == 3000 and settings.source("model", "ctx") == "--ctx"
    assert settings.value("ui", "theme") == "paper" and settings.value("tools", "enabled") is False


def test_think_flag_and_file(tmp_path):
    path = write(tmp_path, "[model]\nthink = false\n")
    assert resolve(path, ["--demo"])[0].think is False
    assert resolve(path, ["--demo", "--think"])[0].think is True
    assert resolve(tmp_path / "none.toml", ["--demo"])[0].think is None  # unset: the model's default


def test_bad_values_unknown_keys_and_sections_are_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, "[ui]\ntheme = \"paper\"\ncolour = \"red\"\n\n[model]\nctx = \"big\"\nmax_tokens = 50\n"
                           "temperature = 9\n\n[mcp.servers.time]\ncommand = \"python\"\nbogus = 1\n\n"
                           "[endpoint]\ntool_calls = \"sometimes\"\n\n[nonsense]\na = 1\n")
    settings = load_settings(path, {})
    problems = settings.problems
    assert f"{path}:3: [ui] unknown key 'colour'" in problems[0]
    assert f"{path}:6: [model] ctx must be a whole number >= 256, not 'big'" in problems[1]
    assert f"{path}:8: [model] temperature must be a number from 0 to 5, not 9" in problems[2]
    assert f"{path}:12: [mcp.servers.time] unknown key 'bogus'" in problems[3]
    assert f"{path}:15: [endpoint] tool_calls must be one of 'auto', 'native', 'text'" in problems[4]
    assert f"{path}:17: unknown section 'nonsense'" in problems[5]
    assert len(problems) == 6
    # the good values still apply; the bad ones fall back to their defaults
    assert settings.value("ui", "theme") == "paper" and settings.value("model", "max_tokens") == 50
    assert settings.value("model", "ctx") is None and settings.value("endpoint", "tool_calls") == "auto"


def test_broken_toml_names_the_line_and_uses_defaults(tmp_path):
    path = write(tmp_path, "[model]\nctx = 100\nmax_tokens = = 3\n")
    settings = load_settings(path, {})
    assert len(settings.problems) == 1 and settings.problems[0].startswith(f"{path}:3: not valid TOML")
    assert settings.value("model", "max_tokens") == 4096


def test_bad_environment_values_are_reported(tmp_path):
    settings = load_settings(tmp_path / "none.toml", {"QWEN_TUI_MODEL_SEED": "abc", "QWEN_TUI_TOOLS_SHELL_SCRUB_ENV": "A_*, B",
                                                       "QWEN_TUI_HOME": "/elsewhere"})
    assert settings.problems == ["$QWEN_TUI_MODEL_SEED: must be a whole number, not 'abc'; ignored"]
    assert settings.value("tools.shell", "scrub_env") == ["A_*", "B"]


def test_load_table_keeps_its_contract_and_adds_env(tmp_path, monkeypatch):
    path = write(tmp_path, "[tools.shell]\nmax_timeout = 900\nshell = \"zsh\"\n[mcp.servers.t]\ncommand = \"x\"\n")
    assert config.load_table("tools.shell", path) == ({"max_timeout": 900, "shell": "zsh"}, [])
    assert config.load_table("mcp.servers", path) == ({"t": {"command": "x"}}, [])
    assert config.load_table("context", path) == ({}, [])
    monkeypatch.setenv("QWEN_TUI_TOOLS_SHELL_MAX_TIMEOUT", "1200")
    assert config.load_table("tools.shell", path)[0] == {"max_timeout": 1200.0, "shell": "zsh"}
    assert config.load_table("tools.shell", tmp_path / "none.toml") == ({"max_timeout": 1200.0}, [])
    broken = write(tmp_path, "[tools.shell\n")
    table, problems = config.load_table("tools.shell", broken)
    assert table == {"max_timeout": 1200.0} and "config.toml" in problems[0]


def test_locate_finds_keys_in_tables_dotted_and_quoted():
    lines = locate('a = 1\n[tools.shell]\n# x = 2\nmax_timeout = 3\n[keymap]\n"chat.new" = "f5"\n'
                   '[mcp.servers."my server"]\nargs = [\n "x = y",\n]\nenv.HOME = "/h"\n')
    assert lines[("a",)] == 1 and lines[("tools", "shell", "max_timeout")] == 4
    assert lines[("keymap", "chat.new")] == 6 and ("x",) not in lines
    assert lines[("mcp", "servers", "my server", "args")] == 8 and lines[("mcp", "servers", "my server", "env", "HOME")] == 11


def test_docs_config_md_is_generated_and_current():
    assert (ROOT / "docs" / "config.md").read_text(encoding="utf-8") == render_markdown(), (
        "docs/config.md is out of date: python -m qwen_tui.settings.docs > docs/config.md")


def test_every_key_is_documented():
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## [{section.name}]" in text
        for key in NAMED_KEYS.get(section.name, section.keys):
            assert f"| `{key.name}` |" in text and key.doc


def test_default_file_is_valid_all_commented_and_clean(tmp_path):
    text = default_file_text()
    data = tomllib.loads(text)

    def leaves(table: dict) -> list:
        return [v for value in table.values() for v in (leaves(value) if isinstance(value, dict) else [value])]

    assert data and leaves(data) == []  # every key is commented out
    assert load_settings(write(tmp_path, text), {}).problems == []
    # uncommenting every `# key = value` line gives a file that also validates
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line and not line.startswith("# [")
                            and "\"chat." not in line and line[2:3].isalpha() and line.split(" = ")[0][2:].isidentifier()
                            else line for line in text.splitlines())
    settings = load_settings(write(tmp_path, uncommented), {})
    assert settings.problems == [], settings.problems[:3]


def test_schema_declares_what_features_read():
    """Keys the features validate themselves must be in the schema (else `config check` calls them unknown)."""
    from dataclasses import fields

    from qwen_tui.context.budget import ContextSettings
    from qwen_tui.engine.state_size import CHECKPOINT_KEYS
    from qwen_tui.engine.remote_profiles import KEYS

    def names(section):
        return {k.name for k in NAMED_KEYS.get(section, BY_NAME[section].keys)}

    assert {f.name for f in fields(ContextSettings)} | set(CHECKPOINT_KEYS) <= names("context")
    assert set(KEYS) <= names("endpoint") and set(KEYS) <= names("profiles")
    import importlib.util

    def plugin(name):
        spec = importlib.util.spec_from_file_location(f"_config_test_{name}", ROOT / "plugins" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    files_plugin, shell_plugin = plugin("files"), plugin("shell")
    from qwen_tui.engine.speed_settings import speed_settings

    read = []  # every key [speed] reads, seen by handing it a table that records lookups

    class Recording(dict):
        def get(self, key, default=None):
            read.append(key)
            return default

    speed_settings(Recording())
    assert read and set(read) <= names("speed")
    assert set(shell_plugin.DEFAULTS) <= names("tools.shell")
    assert set(files_plugin.DEFAULTS) | {"extra_roots"} <= names("tools.files")


def test_headless_run_uses_file_env_and_flag_in_that_order(tmp_path, demo_model_path):
    """The real command line: [model] max_tokens from the file, then QWEN_TUI_MODEL_MAX_TOKENS, then the flag."""
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text("[model]\nmax_tokens = 2\nseed = 1\ntemperature = 0.0\n"
                                                  "[ui]\nthem = \"typo\"\n")

    def completion_tokens(*flags, env=None):
        proc = subprocess.run([sys.executable, "-m", "qwen_tui", "--model", str(demo_model_path), "-p",
                               "Write a long story about a dragon.", "--json", "--no-save", *flags],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "QWEN_TUI_HOME": str(home), **(env or {})})
        assert proc.returncode == 0, proc.stderr
        finished = [json.loads(line) for line in proc.stdout.splitlines() if '"finished"' in line][-1]
        return finished["usage"]["completion_tokens"], proc.stderr

    tokens, stderr = completion_tokens()
    assert tokens == 2
    assert "config.toml:6: [ui] unknown key 'them'" in stderr  # reported, not fatal
    assert completion_tokens(env={"QWEN_TUI_MODEL_MAX_TOKENS": "5"})[0] == 5
    assert completion_tokens("--max-tokens", "3", env={"QWEN_TUI_MODEL_MAX_TOKENS": "5"})[0] == 3


@pytest.mark.parametrize("text", ["[keymap]\n\"chat.new\" = 5\n", "keymap = 3\n", "[tools]\nshell = 1\n"])
def test_wrong_shapes_never_raise(tmp_path, text):
    settings = load_settings(write(tmp_path, text), {})
    assert len(settings.problems) == 1 and f"{tmp_path / 'config.toml'}:" in settings.problems[0]
