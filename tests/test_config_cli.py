"""`qwen-tui config path|show|check|edit` as a user runs them (real processes, a throw-away home)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qwen_tui.settings.loader import tomllib


def run(home: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwen_tui", "config", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QWEN_TUI_HOME": str(home), **(env or {})},
                          stdin=subprocess.DEVNULL)


def test_path_prints_where_the_file_is(tmp_path):
    proc = run(tmp_path, "path")
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "config" / "config.toml")


def test_show_prints_effective_values_and_their_sources(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[model]\nctx = 8192\n[keymap]\n"chat.new" = "f5"\n'
                                                     '[mcp.servers.time]\ncommand = "python"\n')
    proc = run(tmp_path, "show", env={"QWEN_TUI_MODEL_THREADS": "3"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ctx = 8192  # from the config file" in out
    assert "threads = 3  # from $QWEN_TUI_MODEL_THREADS" in out
    assert "max_tokens = 4096\n" in out and "# seed is not set" in out
    assert '[keymap]\n"chat.new" = "f5"' in out and '[mcp.servers.time]\ncommand = "python"' in out
    assert tomllib.loads(out)["model"] == {"ctx": 8192, "threads": 3, "max_tokens": 4096}  # valid TOML


def test_check_reports_problems_with_line_numbers_and_exit_code(tmp_path):
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "config.toml"
    path.write_text("[model]\nctx = 8192\n")
    ok = run(tmp_path, "check")
    assert ok.returncode == 0 and "no problems" in ok.stdout
    path.write_text('[model]\nctx = 8192\nmax_tokns = 5\n[keymap]\n"chat.toggle_thinking" = "ctrl+n"\n"no.such" = "f9"\n')
    bad = run(tmp_path, "check")
    assert bad.returncode == 1
    assert f"{path}:3: [model] unknown key 'max_tokns'" in bad.stderr
    assert "no.such: no binding has this id" in bad.stderr
    assert "ctrl+n is used by both chat.new and chat.toggle_thinking" in bad.stderr


def test_edit_creates_a_commented_file_and_runs_the_editor(tmp_path):
    editor = tmp_path / "fake-editor.py"  # a real program run the way an editor would be: editor FILE
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('\\n[extra]\\nx = 7\\n')\n")
    home = tmp_path / "home"
    proc = run(home, "edit", env={"VISUAL": f"{sys.executable} {editor}", "EDITOR": "false"})
    assert proc.returncode == 0, proc.stderr
    text = (home / "config" / "config.toml").read_text()
    assert text.startswith("# qwen-tui configuration.") and "# max_tokens = 4096" in text
    assert "created" in proc.stderr
    # what the "editor" wrote is checked as soon as it exits
    assert "unknown section 'extra'" in proc.stderr
    # a second edit keeps the file (the editor appends again, nothing is recreated)
    run(home, "edit", env={"VISUAL": f"{sys.executable} {editor}"})
    assert (home / "config" / "config.toml").read_text().count("x = 7") == 2


def test_edit_without_an_editor_says_so(tmp_path):
    env = {"VISUAL": "", "EDITOR": "", "PATH": str(tmp_path)}  # no nano/vi on PATH
    proc = subprocess.run([sys.executable, "-m", "qwen_tui", "config", "edit"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QWEN_TUI_HOME": str(tmp_path), **env})
    assert proc.returncode == 2 and "set $VISUAL or $EDITOR" in proc.stderr


def test_bad_subcommand_is_a_usage_error(tmp_path):
    proc = run(tmp_path, "frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
