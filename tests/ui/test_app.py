"""The app driven with Pilot and a scripted engine: what a user sees and can do."""

from __future__ import annotations

import asyncio

import pytest
from textual import events
from textual.command import CommandPalette

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.screens.dialogs import ErrorDialog, HelpScreen
from qwen_tui.ui.widgets.messages import AssistantMessage, NoticeMessage, ReasoningBlock, UserMessage
from qwen_tui.ui.widgets.prompt import PromptInput
from qwen_tui.ui.widgets.status import StatusBar


async def wait_for(pilot, condition, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in time; screens: {pilot.app.screen_stack}, state: {pilot.app.status.state} {pilot.app.engine}")
        await pilot.pause(0.05)


async def type_and_send(pilot, text):
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


def idle(app):
    return not app.generating and app.engine is not None


async def test_send_and_stream_an_answer():
    engine = FakeEngine(["The capital of France is **Paris**.\n\n```python\nprint('hi')\n```"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "capital of France?")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages)
        assert engine.requests[0]["messages"] == [{"role": "user", "content": "capital of France?"}]
        assert [type(w) for w in app.transcript.children] == [UserMessage, AssistantMessage]
        reply = app.query_one(AssistantMessage)
        assert reply.text.startswith("The capital of France is **Paris**.")
        assert app.conversation.messages[-1].finish_reason == "stop"
        status = app.query_one(StatusBar)
        assert status.state == "idle" and "tok/s" in status.speed and status.context.endswith("/ 262.1K")
        assert app.query_one(PromptInput).text == ""


async def test_escape_stops_a_streaming_answer():
    engine = FakeEngine(["word " * 400], tokens_per_s=100, chunk=5)
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "long")
        await wait_for(pilot, lambda: app.query(AssistantMessage) and app.query_one(AssistantMessage).text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: idle(app))
        answer = app.conversation.messages[-1]
        assert answer.finish_reason == "cancelled"
        assert 0 < len(answer.content) < len("word " * 400)
        assert "[stopped]" in str(app.query_one(".finish-note").render())


async def test_reasoning_streams_then_collapses_and_expands():
    engine = FakeEngine(["Done."], reasoning="First I consider the question. Then I answer it. " * 10, tokens_per_s=60)
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "q")
        await wait_for(pilot, lambda: app.query(ReasoningBlock))
        block = app.query_one(ReasoningBlock)
        assert block.expanded and not block.finished  # visible while it streams
        await wait_for(pilot, lambda: idle(app))
        assert block.finished and not block.expanded and block.has_class("collapsed")
        assert "reasoning (90 words)" in str(block.render())
        await pilot.press("ctrl+r")
        assert block.expanded and "Then I answer it." in str(block.render())
        assert app.conversation.messages[-1].reasoning.startswith("First I consider")


async def test_long_reasoning_shows_its_newest_lines_while_streaming_and_all_of_it_when_expanded():
    steps = " ".join(f"step{i}" for i in range(600))
    engine = FakeEngine(["Done."], reasoning=steps + " conclusion.", tokens_per_s=150)
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "q")
        await wait_for(pilot, lambda: app.query(ReasoningBlock) and "step300 " in app.query_one(ReasoningBlock).text)
        block = app.query_one(ReasoningBlock)
        assert not block.finished
        await pilot.pause(0.2)  # the next repaint
        shown = str(block.render())
        assert shown.startswith("…") and "step0 " not in shown  # the newest lines, not the first
        assert block.size.height <= 12
        await wait_for(pilot, lambda: idle(app))
        await pilot.press("ctrl+r")
        shown = str(block.render())
        assert "step0 " in shown and "conclusion." in shown


async def test_thinking_toggle_applies_to_the_next_turn():
    engine = FakeEngine(["a", "b", "c"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "one")
        await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 1)
        await pilot.press("ctrl+t")
        assert app.query_one(StatusBar).thinking is False
        await type_and_send(pilot, "two")
        await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 2)
        await type_and_send(pilot, "/think on")
        await type_and_send(pilot, "three")
        await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 3)
        assert [r["thinking"] for r in engine.requests] == [True, False, True]
        # the history sent to the model carries the earlier turns
        assert [m["content"] for m in engine.requests[2]["messages"]] == ["one", "a", "two", "b", "three"]


async def test_slash_commands_new_and_help():
    engine = FakeEngine(["a"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "hi")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages)
        await type_and_send(pilot, "/new")
        await wait_for(pilot, lambda: not app.transcript.children)
        assert app.conversation.messages == [] and len(engine.requests) == 1
        await type_and_send(pilot, "/help")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_runs_actions():
    engine = FakeEngine(["a"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        for ch in "Toggle thinking":
            await pilot.press(ch if ch != " " else "space")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.thinking is False


async def test_keys_can_be_remapped_by_id(isolated_home):
    config = isolated_home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('[keymap]\n"chat.toggle_thinking" = "ctrl+g"\n')
    try:
        app = QwenApp(lambda: FakeEngine())
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.engine is not None)
            await pilot.press("ctrl+t")
            assert app.thinking is True  # the old key no longer does it
            await pilot.press("ctrl+g")
            assert app.thinking is False
    finally:
        (config / "config.toml").unlink()


async def test_broken_config_is_reported_not_fatal(isolated_home):
    config = isolated_home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text("[keymap\nthis is not toml")
    try:
        app = QwenApp(lambda: FakeEngine())
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.engine is not None)
            assert app.config_problems and "config.toml" in app.config_problems[0]
    finally:
        (config / "config.toml").unlink()


async def test_load_failure_dialog_retry_keeps_what_was_typed():
    attempts = []

    def factory():
        attempts.append(1)
        return FakeEngine(load_error="model file not found: /x.gguf" if len(attempts) == 1 else None, load_seconds=1.0)

    app = QwenApp(factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"hello")  # typed while the model loads
        assert app.query_one(PromptInput).text == "hello"
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "model file not found" in app.screen.message
        await pilot.press("r")
        await wait_for(pilot, lambda: app.engine is not None)
        assert len(attempts) == 2
        assert app.query_one(PromptInput).text == "hello"


async def test_prompt_sent_while_loading_goes_out_when_ready():
    engine = FakeEngine(["ready now"], load_seconds=3)
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_and_send(pilot, "early")
        assert app.engine is None
        await wait_for(pilot, lambda: engine.requests and idle(app))
        assert engine.requests[0]["messages"][-1]["content"] == "early"
        assert app.conversation.messages[-1].content == "ready now"


async def test_engine_crash_shows_dialog_and_retry_resends():
    engine = FakeEngine(["recovered answer"], crash_on_turn=0)
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "please answer")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "SIGSEGV" in app.screen.message
        assert app.query(NoticeMessage)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(engine.requests) == 2 and idle(app))
        assert engine.requests[1]["messages"][-1]["content"] == "please answer"
        assert app.conversation.messages[-1].content == "recovered answer"
        assert [m.role for m in app.conversation.messages] == ["user", "assistant"]


async def test_prompt_history_and_multiline():
    app = QwenApp(lambda: FakeEngine(["x"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        await pilot.press("a", "ctrl+j", "b", "enter")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages)
        await pilot.press("c", "enter")
        await wait_for(pilot, lambda: idle(app) and len(app.conversation.messages) == 4)
        assert app.conversation.messages[0].content == "a\nb"
        await pilot.press("up")
        assert prompt.text == "c"
        await pilot.press("up")
        assert prompt.text == "a\nb"
        await pilot.press("down")  # the recalled text's cursor sits at its end: Down goes on
        assert prompt.text == "c"
        await pilot.press("down")
        assert prompt.text == ""


async def test_large_paste_is_kept_whole():
    app = QwenApp(lambda: FakeEngine(["ok"]))
    big = "line of pasted text\n" * 2000
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        app.post_message(events.Paste(big))  # as the terminal delivers a bracketed paste
        await pilot.pause(0.2)
        assert prompt.text == big
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages)
        assert app.conversation.messages[0].content == big


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot(snap_compare, size):
    engine = FakeEngine(["Paris is the capital of **France**.\n\n- one\n- two\n\n```python\nprint('hi')\n```"],
                        reasoning="The user asks about France.")
    app = QwenApp(lambda: engine)

    async def run_before(pilot):
        while app.engine is None:
            await pilot.pause(0.05)
        await type_and_send(pilot, "capital of France?")
        while not (idle(app) and app.conversation.messages):
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


CALL = "<tool_call>\n<function=add_numbers>\n<parameter=a>\n2\n</parameter>\n<parameter=b>\n3\n</parameter>\n</function>\n</tool_call>"


def toolset_with_adder(tmp_path):
    from qwen_tui.tools.approval import ApprovalPolicy
    from qwen_tui.tools.registry import ToolRegistry
    from qwen_tui.tools.tool import Tool, ToolContext
    from qwen_tui.toolset import Toolset

    def add_numbers(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    registry = ToolRegistry(tools=[Tool.from_function(add_numbers)])
    policy = ApprovalPolicy(tmp_path, interactive=True, store_path=tmp_path / "approvals.json")
    return Toolset(None, registry, policy, ToolContext(workspace=tmp_path))


async def test_tool_call_asks_runs_and_shows_the_result(tmp_path):
    from qwen_tui.ui.screens.approval import ApprovalDialog
    from qwen_tui.ui.widgets.messages import ToolCallBlock

    engine = FakeEngine([f"Let me add.\n\n{CALL}", "The sum is 5."])
    app = QwenApp(lambda: engine, toolset=toolset_with_adder(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "add 2 and 3")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        assert app.screen.tool_name == "add_numbers" and app.screen.arguments == {"a": 2, "b": 3}
        await pilot.press("y")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "The sum is 5.")
        block = app.query_one(ToolCallBlock)
        assert block.status == "done" and block.result == "5"
        roles = [m.role for m in app.conversation.messages]
        assert roles == ["user", "assistant", "tool", "assistant"]
        assert app.conversation.messages[1].tool_calls[0]["function"]["arguments"] == {"a": 2, "b": 3}
        # the second request carried the tool result back to the model
        assert engine.requests[1]["messages"][-1] == {"role": "tool", "content": "5"}
        assert engine.requests[0]["tools"][0]["function"]["name"] == "add_numbers"


async def test_denied_tool_call_tells_the_model_why(tmp_path):
    from qwen_tui.ui.screens.approval import ApprovalDialog

    engine = FakeEngine([CALL, "OK, I won't."])
    app = QwenApp(lambda: engine, toolset=toolset_with_adder(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "add")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        await pilot.press("n")
        for ch in "not now":
            await pilot.press(ch if ch != " " else "space")
        await pilot.press("enter")
        await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 2)
        assert "not now" in engine.requests[1]["messages"][-1]["content"]


PLUGIN_V1 = '''
from qwen_tui import hookimpl

def shout(text: str) -> str:
    """Upper-case text."""
    return text.upper()

def echo_command(args):
    return "echo: " + args

@hookimpl
def register_tools(register):
    register(shout)

@hookimpl
def register_commands(register):
    register("echo", echo_command, "say it back")
'''


async def test_plugin_hot_reload_and_plugin_slash_command(tmp_path, isolated_home):
    from qwen_tui.toolset import build_toolset

    plugins = isolated_home / "config" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    plugin = plugins / "hot_reload_demo.py"
    plugin.write_text(PLUGIN_V1)
    try:
        toolset = build_toolset(workspace=tmp_path, model="fake", interactive=True)
        engine = FakeEngine(["one", "two"])
        app = QwenApp(lambda: engine, toolset=toolset)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.engine is not None)
            await type_and_send(pilot, "/echo hi")
            assert any("echo: hi" in str(n.message) for n in app._notifications)
            await type_and_send(pilot, "first")
            await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 1)
            names = {t["function"]["name"] for t in engine.requests[0]["tools"]}
            assert "shout" in names and "whisper" not in names
            plugin.write_text(PLUGIN_V1.replace("def shout", "def whisper").replace("register(shout)", "register(whisper)"))
            await wait_for(pilot, lambda: "whisper" in toolset.registry.names(), timeout=3)
            await type_and_send(pilot, "second")
            await wait_for(pilot, lambda: idle(app) and len(engine.requests) == 2)
            names = {t["function"]["name"] for t in engine.requests[1]["tools"]}
            assert "whisper" in names and "shout" not in names
            assert [m.content for m in app.conversation.messages if m.role == "user"] == ["first", "second"]
    finally:
        plugin.unlink()


async def test_copy_code_block_and_switch_model():
    loaded = []

    def model_factory(path):
        loaded.append(path)
        return FakeEngine(["after the switch"])

    engine = FakeEngine(["Two blocks:\n\n```python\nprint(1)\n```\n\nand\n\n```sh\nls -la\n```\n"])
    app = QwenApp(lambda: engine, model_factory=model_factory)
    copied = []
    app.copy_to_clipboard = copied.append
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await type_and_send(pilot, "code please")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages)
        await type_and_send(pilot, "/copy 2")
        assert copied == ["ls -la\n"]
        await type_and_send(pilot, "/copy")
        assert copied[-1].startswith("Two blocks:")
        copied.clear()
        await pilot.press("ctrl+y")  # with the prompt focused: copy, not the text area's redo
        assert copied and copied[-1].startswith("Two blocks:")
        await type_and_send(pilot, "/model other.gguf")
        await wait_for(pilot, lambda: app.engine is not None and loaded == ["other.gguf"])
        assert engine.closed
        await type_and_send(pilot, "still here?")
        await wait_for(pilot, lambda: idle(app) and app.conversation.messages[-1].content == "after the switch")
        assert [m.content for m in app.conversation.messages if m.role == "user"] == ["code please", "still here?"]
