"""`qwen-tui plugins` and `qwen-tui tools`, run as a user would (real processes and files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ACTIONS = textwrap.dedent('''
    import time
    from pathlib import Path
    from qwen_tui import hookimpl
    from qwen_tui.tools import ToolContext

    def touch(ctx: ToolContext, name: str) -> str:
        """Create an empty file in the workspace."""
        (ctx.workspace / name).write_text("")
        return "created " + name

    def hang() -> str:
        """Never answers."""
        time.sleep(60)

    @hookimpl
    def register_tools(register):
        register(touch)
        register(hang)
''')


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "QWEN_TUI_HOME": str(tmp_path / "home")}


@pytest.fixture
def actions(tmp_path):
    path = tmp_path / "actions.py"
    path.write_text(ACTIONS)
    return path


def qwen(*args, env, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "qwen_tui", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def test_plugins_json_lists_builtin_and_broken(tmp_path, env):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    out = qwen("plugins", "--json", "--plugin", broken, env=env)
    assert out.returncode == 0, out.stderr
    report = {p["name"]: p for p in json.loads(out.stdout)}
    clock = report["clock"]
    assert clock["source"] == "builtin" and clock["error"] is None
    [current_time] = clock["tools"]
    assert current_time["name"] == "current_time" and current_time["description"]
    assert current_time["parameters"]["properties"]["timezone"]["type"] == "string"
    assert report["broken"]["source"] == "path" and report["broken"]["tools"] == []
    assert "ModuleNotFoundError" in report["broken"]["error"] and "line 1" in report["broken"]["error"]
    text = qwen("plugins", "--plugin", broken, env=env).stdout
    assert "clock  [builtin]" in text and "current_time (read-only)" in text and "ERROR: " in text


def test_call_current_time(env):
    out = qwen("tools", "call", "current_time", '{"timezone": "UTC"}', env=env)
    assert out.returncode == 0, out.stderr
    assert "+00:00" in out.stdout and "UTC" in out.stdout
    out = qwen("tools", "call", "current_time", '{"timezone": "Asia/Tokyo"}', "--json", env=env)
    result = json.loads(out.stdout)
    assert result["ok"] is True and "+09:00" in result["content"] and result["error"] is None


def test_refused_call_exits_non_zero_and_changes_nothing(tmp_path, env, actions):
    ws = tmp_path / "ws"
    ws.mkdir()
    out = qwen("tools", "call", "touch", '{"name": "new.txt"}', "--workspace", ws, "--plugin", actions, env=env)
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1 and "--allow touch" in out.stderr and "Traceback" not in out.stderr
    assert not (ws / "new.txt").exists()
    out = qwen("tools", "call", "touch", '{"name": "new.txt"}', "--workspace", ws, "--plugin", actions, "--allow", "touch", env=env)
    assert out.returncode == 0 and out.stdout.strip() == "created new.txt" and (ws / "new.txt").exists()
    out = qwen("tools", "call", "touch", '{"name": "b.txt"}', "--workspace", ws, "--plugin", actions, "--yolo", env=env)
    assert out.returncode == 0 and (ws / "b.txt").exists()


def test_failed_calls_give_one_line_reasons(env, actions):
    out = qwen("tools", "call", "current_time", '{"zone": "UTC"}', env=env)
    assert out.returncode == 1 and "unknown argument 'zone'" in out.stderr and out.stderr.count("\n") == 1
    out = qwen("tools", "call", "current_time", '{"timezone": "Mars/Olympus"}', "--json", env=env)
    assert out.returncode == 1 and json.loads(out.stdout)["error"].startswith("ValueError: unknown time zone")
    out = qwen("tools", "call", "no_such_tool", "{}", env=env)
    assert out.returncode == 2 and "unknown tool 'no_such_tool'" in out.stderr and "current_time" in out.stderr
    out = qwen("tools", "call", "current_time", "{not json", env=env)
    assert out.returncode == 2 and "JSON" in out.stderr
    start = time.monotonic()
    out = qwen("tools", "call", "hang", "{}", "--plugin", actions, "--yolo", "--timeout", "0.5", env=env)
    assert out.returncode == 1 and "timed out after 0.5 s" in out.stderr
    assert time.monotonic() - start < 10  # the stuck thread does not keep the process alive


def test_tools_list(env, actions):
    out = qwen("tools", "list", "--json", "--plugin", actions, env=env)
    names = [t["function"]["name"] for t in json.loads(out.stdout)]
    assert names[-2:] == ["touch", "hang"]  # after every built-in tool
    assert {"current_time", "read_file", "list_dir", "glob", "search", "run_command"} <= set(names[:-2])
    assert "current_time (read-only)  [clock]" in qwen("tools", "list", env=env).stdout


def test_the_first_tool_in_the_docs_works_as_written(tmp_path, env):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    example = docs.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) < 15
    plugins = tmp_path / "home" / "config" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "dice.py").write_text(example)
    listing = qwen("plugins", env=env).stdout
    assert "dice  [user]" in listing and "roll_dice (read-only)" in listing
    out = qwen("tools", "call", "roll_dice", '{"sides": 20}', env=env)
    assert out.returncode == 0 and 1 <= int(out.stdout) <= 20
    out = qwen("tools", "call", "roll_dice", '{"sides": "x"}', env=env)
    assert out.returncode == 1 and "argument 'sides' must be integer, got str \"x\"" in out.stderr
