"""Who may run what: read-only auto-allow, remembered answers scoped to session or project,
headless deny-by-default, --allow, --yolo, plugins first."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from qwen_tui import paths
from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost
from qwen_tui.tools import Tool, tool
from qwen_tui.tools.approval import ApprovalPolicy, approvals_path


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_file(path: str, text: str) -> str:
    """Write a file."""
    Path(path).write_text(text)
    return "ok"


@tool(read_only=True)
def read_file(path: str) -> str:
    """Read a file."""
    return Path(path).read_text()


WRITE, READ = Tool.from_function(write_file), Tool.from_function(read_file)


def call(tool_: Tool, **arguments) -> ToolCall:
    return ToolCall(name=tool_.name, arguments=arguments, raw="")


def test_read_only_allowed_write_asks(tmp_path):
    policy = ApprovalPolicy(tmp_path)
    assert policy.decide(call(READ, path="a"), READ).verdict == "allow"
    decision = policy.decide(call(WRITE, path="a", text=""), WRITE)
    assert decision.verdict == "ask" and "write_file" in decision.reason


def test_project_rule_is_scoped_to_its_workspace(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (tmp_path / "link-to-a").symlink_to(a)
    ApprovalPolicy(a).remember("write_file", "project")
    assert approvals_path() == paths.config_dir() / "approvals.json"
    stored = json.loads(approvals_path().read_text())
    assert stored == {str(a.resolve()): {"allow": ["write_file"]}}
    c = call(WRITE, path="x", text="")
    assert ApprovalPolicy(a).decide(c, WRITE).verdict == "allow"  # a new session, same project
    assert ApprovalPolicy(tmp_path / "link-to-a").decide(c, WRITE).verdict == "allow"  # same real folder
    assert ApprovalPolicy(b).decide(c, WRITE).verdict == "ask"  # never leaks to another workspace
    assert ApprovalPolicy(tmp_path).decide(c, WRITE).verdict == "ask"  # nor to the parent
    ApprovalPolicy(a).forget("write_file")
    assert ApprovalPolicy(a).decide(c, WRITE).verdict == "ask"


def test_session_rule_is_not_persisted(tmp_path):
    policy = ApprovalPolicy(tmp_path)
    c = call(WRITE, path="x", text="")
    policy.remember("write_file", "once")
    assert policy.decide(c, WRITE).verdict == "ask"
    policy.remember("write_file", "session")
    assert policy.decide(c, WRITE).verdict == "allow"
    assert ApprovalPolicy(tmp_path).decide(c, WRITE).verdict == "ask"
    assert not approvals_path().exists()


def test_headless_denies_unless_allowed_and_yolo(tmp_path):
    c = call(WRITE, path="x", text="")
    denied = ApprovalPolicy(tmp_path, interactive=False).decide(c, WRITE)
    assert denied.verdict == "deny" and "--allow write_file" in denied.reason
    assert ApprovalPolicy(tmp_path, interactive=False).decide(call(READ, path="x"), READ).verdict == "allow"
    assert ApprovalPolicy(tmp_path, interactive=False, allow={"write_file"}).decide(c, WRITE).verdict == "allow"
    assert ApprovalPolicy(tmp_path, interactive=False, allow={"other"}).decide(c, WRITE).verdict == "deny"
    assert ApprovalPolicy(tmp_path, interactive=False, yolo=True).decide(c, WRITE).verdict == "allow"


def test_needs_approval_for_paths_outside_the_workspace(tmp_path):
    def outside(arguments: dict, workspace: Path) -> bool:
        return not (workspace / arguments["path"]).resolve().is_relative_to(workspace)

    @tool(read_only=True, needs_approval=outside)
    def cat(path: str) -> str:
        """Show a file."""
        return ""

    t = Tool.from_function(cat)
    policy = ApprovalPolicy(tmp_path, interactive=False)
    assert policy.decide(call(t, path="notes.txt"), t).verdict == "allow"
    assert policy.decide(call(t, path="../../etc/passwd"), t).verdict == "deny"
    t.needs_approval = lambda arguments, workspace: 1 / 0  # a broken check asks, never allows
    assert ApprovalPolicy(tmp_path).decide(call(t, path="a"), t).verdict == "ask"


def test_plugin_hook_is_consulted_first(tmp_path):
    plugin = tmp_path / "guard.py"
    plugin.write_text(textwrap.dedent('''
        from qwen_tui import hookimpl

        @hookimpl
        def approve_tool_call(call, tool):
            if call.arguments.get("path", "").endswith(".env"):
                return "deny"
            if tool.name == "write_file" and call.arguments.get("path", "").startswith("scratch/"):
                return "allow"
            return None
    '''))
    host = PluginHost(plugin_paths=[plugin], builtin_dir=tmp_path / "x", user_dir=tmp_path / "x", entry_points=False, disabled=())
    host.load_all()
    yolo = ApprovalPolicy(tmp_path, yolo=True, host=host)
    assert yolo.decide(call(READ, path=".env"), READ).verdict == "deny"  # a plugin's deny beats --yolo
    headless = ApprovalPolicy(tmp_path, interactive=False, host=host)
    assert headless.decide(call(WRITE, path="scratch/a", text=""), WRITE).verdict == "allow"
    assert headless.decide(call(WRITE, path="src/a", text=""), WRITE).verdict == "deny"  # None: falls through


def test_a_raising_approval_hook_disables_its_plugin_only(tmp_path):
    plugin = tmp_path / "bad_guard.py"
    plugin.write_text("from qwen_tui import hookimpl\n\n@hookimpl\ndef approve_tool_call(call, tool):\n    raise RuntimeError('guard broke')\n")
    host = PluginHost(plugin_paths=[plugin], builtin_dir=tmp_path / "x", user_dir=tmp_path / "x", entry_points=False, disabled=())
    host.load_all()
    policy = ApprovalPolicy(tmp_path, interactive=False, host=host)
    assert policy.decide(call(READ, path="a"), READ).verdict == "allow"  # falls through to the rules
    info = host.find(name="bad_guard")
    assert not info.active and info.error == "hook approve_tool_call raised line 5: RuntimeError: guard broke"
