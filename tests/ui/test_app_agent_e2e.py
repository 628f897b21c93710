"""The whole path in the app with the real tiny qwen35 model: the template renders the tools, the
model (forced by a grammar) calls a plugin's tool, the user approves in the dialog, the result
goes back into the next prompt, and the call and its result are visible in the transcript."""

from __future__ import annotations

import asyncio

from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.plugins import PluginHost
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.tool import ToolContext
from qwen_tui.toolset import Toolset
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.screens.approval import ApprovalDialog
from qwen_tui.ui.widgets.messages import AssistantMessage, ToolCallBlock
from qwen_tui.ui.widgets.prompt import PromptInput

PLUGIN = '''
from qwen_tui import hookimpl

def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

@hookimpl
def register_tools(register):
    register(add_numbers)
'''
CALL = ('root ::= "<tool_call>\\n<function=add_numbers>\\n<parameter=a>\\n2\\n</parameter>\\n'
        '<parameter=b>\\n3\\n</parameter>\\n</function>\\n</tool_call>"')
ANSWER = 'root ::= "The sum is 5."'


async def until(pilot, condition, timeout=60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_real_model_tool_call_through_the_app(tiny_qwen35_path, tmp_path):
    plugin = tmp_path / "adder.py"
    plugin.write_text(PLUGIN)
    host = PluginHost(plugin_paths=[plugin], builtin_dir=tmp_path / "none", user_dir=tmp_path / "none", entry_points=False)
    host.load_all()
    registry = ToolRegistry(host)
    policy = ApprovalPolicy(tmp_path, interactive=True, host=host, store_path=tmp_path / "approvals.json")
    toolset = Toolset(host, registry, policy, ToolContext(workspace=tmp_path))
    steps = iter([CALL, ANSWER])
    engines = []

    def engine_factory():
        engines.append(LocalEngine(tiny_qwen35_path, n_ctx=8192))
        return engines[-1]

    app = QwenApp(engine_factory, thinking=False, toolset=toolset, max_tokens=300,
                  sampling_for=lambda thinking: Sampling(temperature=0, grammar=next(steps)))
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        prompt.load_text("please add 2 and 3")
        prompt.action_submit()
        await until(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        assert app.screen.arguments == {"a": 2, "b": 3}
        await pilot.press("y")
        await until(pilot, lambda: not app.generating and app.conversation.messages[-1].content == "The sum is 5.")
        block = app.query_one(ToolCallBlock)
        assert block.status == "done" and block.result == "5"
        assert "The sum is 5." in [m.text for m in app.query(AssistantMessage)]
        engine = engines[0]
        first = engine.render(app.conversation.for_template()[:1], tools=registry.openai_schemas(), thinking=False)
        assert "<tools>" in first and "add_numbers" in first
        second = engine.render(app.conversation.for_template()[:3], tools=registry.openai_schemas(), thinking=False)
        assert "<tool_response>\n5\n</tool_response>" in second
