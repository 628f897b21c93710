"""The approval dialog offers "always allow commands starting with <prefix> here" for a simple
shell command: pressing a stores the rule, this call runs, and the next matching command runs
without asking. A chained command is never offered a rule (the key does nothing there)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from qwen_tui.plugins import PluginHost
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.tool import ToolContext
from qwen_tui.toolset import Toolset
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.screens.approval import ApprovalDialog


def shell_call(command: str) -> str:
    return f"<tool_call>\n<function=run_command>\n<parameter=command>\n{command}\n</parameter>\n</function>\n</tool_call>"


async def wait_for(pilot, condition, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"condition not met in time; screens: {pilot.app.screen_stack}"
        await pilot.pause(0.05)


async def send(pilot, text):
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


def idle(app):
    return not app.generating and app.engine is not None


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))  # approvals.json (and the rules) live here
    root = tmp_path / "ws"
    root.mkdir()
    return root


def shell_toolset(ws, tmp_path):
    host = PluginHost(entry_points=False, user_dir=tmp_path / "none", disabled=())
    host.load_all()  # the built-in plugins: run_command is the real one
    policy = ApprovalPolicy(ws, interactive=True, host=host)
    return Toolset(host, ToolRegistry(host), policy, ToolContext(workspace=ws))


def tool_results(app) -> list[str]:
    return [m.content for m in app.conversation.messages if m.role == "tool"]


async def test_always_allow_a_command_prefix_from_the_dialog(ws, tmp_path):
    toolset = shell_toolset(ws, tmp_path)
    engine = FakeEngine([shell_call("echo hello world"), "ran it", shell_call("echo hello again"), "ran again",
                         shell_call("echo hellox"), "asked"])
    app = QwenApp(lambda: engine, toolset=toolset)
    async with app.run_test(size=(110, 34)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "greet")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        dialog = app.screen
        assert dialog.command_rule == "echo hello"
        offer = str(dialog.query_one("#approval-rule").render())
        assert "a always allow commands starting with `echo hello` here" in offer
        assert any(b.id == "approval.command" and b.key == "a" for b in dialog.BINDINGS)
        await pilot.press("a")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "ran it")
        assert toolset.policy.command_rules() == ["echo hello"]
        assert tool_results(app)[-1].startswith("hello world\n[exit code 0")

        # the same prefix again: not asked (a dialog would block the turn and the wait would time out)
        await send(pilot, "again")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "ran again")
        assert tool_results(app)[-1].startswith("hello again\n[exit code 0")
        assert not isinstance(app.screen, ApprovalDialog)

        # only whole words match: "echo hellox" is asked about (and offered its own rule)
        await send(pilot, "other")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        assert app.screen.command_rule == "echo hellox"
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "asked")
        assert toolset.policy.command_rules() == ["echo hello"]


@pytest.mark.parametrize("command", ["echo hello && touch pwned", "echo hello; touch pwned", "echo $(touch pwned)",
                                     "bash -c 'touch pwned'", "X=1 touch pwned"])
async def test_chained_or_wrapped_commands_are_never_offered_a_rule(ws, tmp_path, command):
    toolset = shell_toolset(ws, tmp_path)
    toolset.policy.allow_command("echo hello")  # a rule exists, but it can never cover these
    engine = FakeEngine([shell_call(command), "not run"])
    app = QwenApp(lambda: engine, toolset=toolset)
    async with app.run_test(size=(110, 34)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "go")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        dialog = app.screen
        assert dialog.command_rule is None and not dialog.query("#approval-rule")
        await pilot.press("a")  # nothing to offer: the key does nothing
        await pilot.pause(0.2)
        assert app.screen is dialog
        await pilot.press("escape")
        await pilot.press("escape")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "not run")
        assert "the user denied" in tool_results(app)[-1]
        assert not (ws / "pwned").exists() and toolset.policy.command_rules() == ["echo hello"]


def processes_running(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                if handle.read() == wanted:
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


async def test_esc_stops_a_command_a_rule_let_run(ws, tmp_path):
    toolset = shell_toolset(ws, tmp_path)
    toolset.policy.allow_command("sleep")
    engine = FakeEngine([shell_call("sleep 987.5"), "never asked"])
    app = QwenApp(lambda: engine, toolset=toolset)
    async with app.run_test(size=(110, 34)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "nap")
        await wait_for(pilot, lambda: processes_running(["sleep", "987.5"]))  # not asked: the rule allows it
        assert not isinstance(app.screen, ApprovalDialog)
        await pilot.press("escape")
        stopped_at = time.monotonic()
        await wait_for(pilot, lambda: not processes_running(["sleep", "987.5"]), timeout=5)
        assert time.monotonic() - stopped_at < 1.5  # not the 60 s timeout
        await wait_for(pilot, lambda: idle(app))
        assert "the user cancelled" in tool_results(app)[-1] and len(engine.requests) == 1
